"""A multi-dataset run end to end on tiny data and a tiny model: the training union, per-dataset
embeddings and recommenders, in/out-of-domain marks, and resume after adding an evaluation dataset."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llm2rec.config import load_config
from llm2rec.data.dataset import Dataset
from llm2rec.pipeline import run_pipeline


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    root = tmp_path_factory.mktemp("mix-model")
    tok = make_tiny_tokenizer()
    save_pretrained_atomic(make_tiny_model("llama", tok), tok, root / "model")
    return root / "model"


def _overrides(model, evaluate):
    return [
        f"model={model}",
        "datasets={a: {format: builtin, num_users: 120, num_items: 100, seed: 1},"
        " b: {format: builtin, num_users: 100, num_items: 100, seed: 2},"
        " c: {format: builtin, num_users: 110, num_items: 100, seed: 3}}",
        f"mix={{train: [a, b], evaluate: {evaluate}}}",
        "encoders=[id, csft]",
        "csft={max_steps: 2, eval_every: 2, save_every: 2, batch_size: 4, micro_batch: 4, warmup_steps: 0,"
        " generation_samples: 0, eval_samples: 8, progress: false}",
        "embed.batch_size=32",
        "seqrec={models: [sasrec], seeds: [1], options: {epochs: 1, hidden: 16, ffn: 32}}",
    ]


def test_two_training_datasets_evaluated_in_and_out_of_domain(tmp_path, tiny_model):
    run = tmp_path / "run"
    results = run_pipeline(load_config(None, _overrides(tiny_model, "[a, c]")), run)
    assert {n: d["domain"] for n, d in results["datasets"].items()} == {"a": "in", "c": "out"}
    assert [(e["dataset"], e["encoder"]) for e in results["entries"]] == [
        ("a", "id"), ("c", "id"), ("a", "csft"), ("c", "csft")]  # fmt: skip
    # The LLM stages read the union of a's and b's training parts, nothing of c.
    sources = {n: Dataset.load(run / "datasets" / n) for n in "abc"}
    union = Dataset.load(run / "dataset")
    assert set(union.items["source"]) == {"a", "b"}
    assert union.num_users == sources["a"].num_users + sources["b"].num_users
    for name in "ab":
        trained = {i for s, n in zip(sources[name].sequences["items"], sources[name].sequences["n_train"], strict=True)
                   for i in s[:n]}  # fmt: skip
        keys = set(sources[name].items.set_index("item_id").loc[sorted(trained), "key"])
        assert set(union.items.loc[union.items["source"] == name, "key"]) == {f"{name}:{k}" for k in keys}
    # One extraction per encoder x evaluation dataset, over that dataset's own catalogue.
    for name in "ac":
        vectors = np.load(run / "embeddings" / name / "csft.npy")
        assert vectors.shape[0] == sources[name].num_items + 1
    assert not (run / "embeddings" / "b").exists()
    summary = results["summary"]
    assert {r["encoder"] for r in summary["in"]} == {"id", "csft"} and all(
        r["datasets"] == 1 for r in summary["out"]
    )
    assert "Results on `c` (out-of-domain)" in (run / "report.md").read_text()

    # Adding an evaluation dataset trains no LLM stage: it only prepares, extracts and evaluates.
    before = json.loads((run / "pipeline.json").read_text())
    again = run_pipeline(load_config(None, _overrides(tiny_model, "[a, c, b]")), run)
    after = json.loads((run / "pipeline.json").read_text())
    assert after["csft"] == before["csft"]
    assert after["embed:csft@a"] == before["embed:csft@a"]
    assert after["embed:csft@b"]["status"] == "done"
    assert again["datasets"]["b"]["domain"] == "in"


def test_a_multi_dataset_config_is_checked_before_anything_runs():
    from llm2rec.errors import ConfigError

    base = "datasets={a: {format: builtin}, b: {format: builtin}}"
    with pytest.raises(ConfigError, match="one of datasets"):
        load_config(None, [base, "mix.evaluate=[a, z]"])
    with pytest.raises(ConfigError, match="2 training datasets"):
        load_config(None, [base, "mix.weights=[1]"])
    with pytest.raises(ConfigError, match="not both"):
        load_config(None, [base, "dataset.kcore=3"])
    with pytest.raises(ConfigError, match="multi-dataset"):
        load_config(None, ["mix.weights=[1]"])
    assert load_config(None, [base, "mix.weights=[1, 3]"])["mix"]["weights"] == {"a": 1.0, "b": 3.0}


def test_a_dataset_setting_that_leaves_the_tables_as_they_were_retrains_nothing(tmp_path, tiny_model):
    """Stages downstream of a dataset hash its tables, not its settings: a new setting at its default
    (here skip_bad_lines on data without bad lines) re-prepares the dataset and trains nothing again."""
    overrides = [f"model={tiny_model}", "dataset={format: builtin, num_users: 100, num_items: 100}",
                 *[o for o in _overrides(tiny_model, "[a]") if o.startswith(("encoders", "csft", "embed", "seqrec"))]]  # fmt: skip
    run_pipeline(load_config(None, overrides), tmp_path / "run")
    before = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    run_pipeline(load_config(None, [*overrides, "dataset.skip_bad_lines=true"]), tmp_path / "run")
    after = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert after["dataset"]["fingerprint"] != before["dataset"]["fingerprint"]
    assert after["csft"] == before["csft"] and after["seqrec:csft:sasrec"] == before["seqrec:csft:sasrec"]
