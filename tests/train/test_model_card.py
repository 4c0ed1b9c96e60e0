"""The model card (README.md) a stage publishes with its model: csft → mntp → contrastive (issue 36 §3)."""

from __future__ import annotations

import json

import pytest

from llm2rec.llm.backbone import save_pretrained_atomic
from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
from llm2rec.train.model_card import MAX_EVAL_ROWS, _eval_rows
from tests.train.test_csft import FAST, dataset_dir  # noqa: F401  (the tiny dataset fixture)

SECTIONS = (
    "## Base model",
    "## Stages",
    "## Dataset",
    "## Validation metrics",
    "## Licence",
    "## How to load it",
)


@pytest.fixture(scope="module")
def chain(tmp_path_factory, dataset_dir):  # noqa: F811
    from llm2rec.train.contrastive import run_contrastive
    from llm2rec.train.csft import run_csft
    from llm2rec.train.mntp import run_mntp

    root = tmp_path_factory.mktemp("card")
    tokenizer = make_tiny_tokenizer()
    base = save_pretrained_atomic(make_tiny_model("llama", tokenizer, seed=2), tokenizer, root / "tiny-base")
    csft = run_csft(dataset_dir, base, root / "csft", preset="cpu", **FAST)
    mntp = run_mntp(
        csft, dataset_dir, root / "mntp", preset="cpu", progress=False, max_steps=2, eval_every=1, batch_size=4,
        micro_batch=4,
    )  # fmt: skip
    contrastive = run_contrastive(
        mntp, dataset_dir, root / "contrastive", preset="cpu", progress=False, max_steps=2, batch_size=8,
        micro_batch=8, select_by="knn", eval_every=1,
    )  # fmt: skip
    return base, dataset_dir, {"csft": csft, "mntp": mntp, "contrastive": contrastive}


@pytest.mark.parametrize("stage", ["csft", "mntp", "contrastive"])
def test_every_published_stage_holds_a_model_card(chain, stage):
    base, dataset, outs = chain
    out = outs[stage]
    card = (out / "README.md").read_text(encoding="utf-8")
    record = json.loads((out / f"{stage}.json").read_text())
    assert card.startswith("---\nlibrary_name: transformers\n")  # front matter the hub reads
    for section in SECTIONS:
        assert f"\n{section}\n" in card, section
    assert f"`{base}`" in card  # the base model, also for the later stages
    # the dataset by checksum, and by the path its record keeps (relative to the model folder)
    assert record["dataset_checksum"] in card and f"`{record['dataset']}`" in card
    assert "users," in card and "interactions" in card  # its manifest found from the model folder
    assert "the base model's licence applies" in card
    # the stages and their settings, upstream first
    upto = ["csft", "mntp", "contrastive"][: ["csft", "mntp", "contrastive"].index(stage) + 1]
    positions = [card.index(f"### {s}:") for s in upto]
    assert positions == sorted(positions)
    assert f"| lr | `{record['config']['lr']}` |" in card
    # the valid metrics the stage logged: one row per evaluation, the chosen step marked
    evals = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    evals = [e for e in evals if e["split"] == "eval"]
    assert evals and card.count(" ◀ |") == 1
    assert record["chosen"] == "best" and f"| {record['best_step']} ◀ |" in card
    if stage == "csft":  # a setting holding a newline is written as JSON, so its table row stays whole
        assert '| target_template | `"{title}\\n"` |' in card
    # how to load it with transformers, llm2rec and sentence-transformers
    assert 'from_pretrained("path/to/' + stage + '")' in card
    assert "Encoder.from_pretrained" in card
    # the marker lists it: the directory is still a finished stage output llm2rec may replace
    marker = json.loads((out / ".llm2rec-output.json").read_text())
    assert "README.md" in marker["files"]


def test_the_cards_say_what_each_stage_is_and_loads_it_its_own_way(chain):
    _, _, outs = chain
    csft = (outs["csft"] / "README.md").read_text()
    encoder = (outs["contrastive"] / "README.md").read_text()
    assert "AutoModelForCausalLM" in csft and "SentenceTransformer(" not in csft
    assert "AutoModel.from_pretrained" in encoder and 'SentenceTransformer("contrastive-st")' in encoder
    assert "bidirectional" in encoder and "knn_recall@20" in encoder  # the valid split's knn probe


def test_a_long_run_keeps_first_best_and_last_evaluations():
    events = [{"step": s, "split": "eval", "loss": 1.0 / (s + 1)} for s in range(0, 1000, 10)]
    rows = _eval_rows(events, best_step=420)
    steps = [r["step"] for r in rows]
    assert len(rows) <= MAX_EVAL_ROWS and steps[0] == 0 and steps[-1] == 990 and 420 in steps
