"""MNTP: mask-token choice, masking statistics, the shifted loss, and a short end-to-end run."""

from __future__ import annotations

import json

import pytest
import torch

from llm2rec.data.text import unique_titles
from llm2rec.errors import ConfigError, OutputError
from llm2rec.llm.backbone import resolve_mask_token_id, resolve_model_dir
from llm2rec.train.mntp import (
    IGNORE,
    MNTPCollator,
    mask_tokens,
    shifted_mlm_loss,
    split_titles,
)
from llm2rec.train.outputs import read_metrics
from tests.embed.test_extract import tiny_titles, write_tiny_dataset


@pytest.fixture(scope="module")
def tokenizer():
    from llm2rec.llm.tiny import make_tiny_tokenizer

    return make_tiny_tokenizer()


def test_mask_token_is_own_else_existing_fallback(tokenizer):
    assert resolve_mask_token_id(tokenizer) == tokenizer.convert_tokens_to_ids("_")
    assert resolve_mask_token_id(tokenizer, "a") == tokenizer.convert_tokens_to_ids("a")
    with pytest.raises(ConfigError, match="not a single token"):
        resolve_mask_token_id(tokenizer, "Nitrile gloves large box")
    own = tokenizer.__class__(
        tokenizer_object=tokenizer.backend_tokenizer, mask_token="<unk>", eos_token="<|endoftext|>"
    )
    assert resolve_mask_token_id(own) == own.convert_tokens_to_ids("<unk>")


def test_masking_statistics_on_a_large_sample():
    vocab, mask_id = 5000, 4999
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 4000, (400, 500), generator=generator)
    selectable = torch.rand(ids.shape, generator=generator) > 0.25  # a quarter is "special/padding"
    corrupted, labels = mask_tokens(ids, selectable, mask_id, vocab, 0.2, generator)

    chosen = labels != IGNORE
    assert not (chosen & ~selectable).any(), "special or padding tokens were selected"
    assert torch.equal(corrupted[~chosen], ids[~chosen]), "unselected tokens changed"
    assert torch.equal(labels[chosen], ids[chosen])
    n = chosen.sum().item()
    assert abs(n / selectable.sum().item() - 0.2) < 0.005
    masked = (corrupted == mask_id) & chosen
    kept = (corrupted == ids) & chosen
    randomised = chosen & ~masked & ~kept
    assert abs(masked.sum().item() / n - 0.8) < 0.01
    # random replacements that hit the original id count as "kept": p = 1/5000, negligible
    assert abs(kept.sum().item() / n - 0.1) < 0.008
    assert abs(randomised.sum().item() / n - 0.1) < 0.008
    assert corrupted[randomised].max() < vocab


def test_collator_right_pads_skips_padding_and_fixes_eval_masks(tokenizer):
    collate = MNTPCollator(tokenizer, resolve_mask_token_id(tokenizer), probability=0.5, seed=1)
    titles = ["Nitrile Gloves Large Box of 100", "Beaker"]
    batch = collate(titles)
    assert batch["attention_mask"][1, 0] == 1 and batch["attention_mask"][1, -1] == 0  # right padding
    assert (batch["labels"][batch["attention_mask"] == 0] == IGNORE).all()
    fixed = [(7, titles[0]), (8, titles[1])]
    assert torch.equal(collate(fixed)["input_ids"], collate(fixed)["input_ids"])
    draws = {tuple(collate(titles)["labels"][0].tolist()) for _ in range(10)}
    assert len(draws) > 1  # training titles are masked afresh each time


def test_shifted_loss_scores_position_i_from_i_minus_1():
    vocab = 11
    labels = torch.full((1, 5), IGNORE)
    labels[0, 2], labels[0, 4] = 3, 7
    logits = torch.zeros(1, 5, vocab)
    logits[0, 1, 3] = logits[0, 3, 7] = 20.0  # outputs at i-1 predict the label at i
    loss, metrics = shifted_mlm_loss(logits, labels)
    assert metrics["accuracy"] == 1.0 and metrics["tokens"] == 2 and loss.item() < 1e-3
    unshifted = torch.zeros(1, 5, vocab)
    unshifted[0, 2, 3] = unshifted[0, 4, 7] = 20.0  # the label's own position: must not count
    loss, metrics = shifted_mlm_loss(unshifted, labels)
    assert metrics["accuracy"] == 0.0 and loss.item() > 1.0


def test_titles_are_unique_and_the_split_is_disjoint_and_seeded():
    titles = ["", "a", "b", "a", " c ", "d", "e", "f", "g", "h", "i"]
    uniq = unique_titles(titles)
    assert uniq == ["a", "b", "c", "d", "e", "f", "g", "h", "i"]
    train, held = split_titles(uniq, 0.2, seed=3)
    assert len(held) == 2 and not set(train) & set(held) and set(train) | set(held) == set(uniq)
    assert split_titles(uniq, 0.2, seed=3) == (train, held)


def test_run_mntp_end_to_end_tiny(tmp_path, tokenizer):
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.bidirectional import is_bidirectional
    from llm2rec.llm.tiny import make_tiny_model
    from llm2rec.train.mntp import run_mntp

    model_dir = save_pretrained_atomic(
        make_tiny_model("llama", tokenizer, seed=1), tokenizer, tmp_path / "base"
    )
    data = write_tiny_dataset(tmp_path / "ds", tiny_titles(60))
    settings = dict(
        max_steps=24, lr=3e-3, eval_every=8, eval_fraction=0.2, length_grouped=True
    )  # fmt: skip  (the titles carry their token counts)
    out = run_mntp(model_dir, data, tmp_path / "mntp", preset="cpu", progress=False, **settings)
    evals = [e for e in read_metrics(out) if e["split"] == "eval"]
    assert evals[0]["step"] == 0 and len(evals) == 4
    assert min(e["loss"] for e in evals[1:]) < evals[0]["loss"]
    from transformers import AutoConfig

    assert resolve_model_dir(out) == str(out) and is_bidirectional(AutoConfig.from_pretrained(out))
    assert json.loads((out / "config.json").read_text())["llm2rec_bidirectional"] is True
    record = json.loads((out / "mntp.json").read_text())
    assert record["eval_titles"] == 12 and record["train_titles"] == 48
    assert record["eval_best"]["loss"] == min(e["loss"] for e in evals)
    assert not (tmp_path / "mntp.work").exists()  # training state is dropped once published
    # a finished run is returned at once under the same settings (progress is not one of them) ...
    assert run_mntp(model_dir, data, out, preset="cpu", **settings) == out
    # ... and refused under others (tests/train/test_stage_identity.py)
    with pytest.raises(OutputError, match="another settings: eval_every, eval_fraction"):
        run_mntp(model_dir, data, out, preset="cpu", max_steps=24)


def test_cli_contract(tmp_path, tokenizer):
    from typer.testing import CliRunner

    from llm2rec.cli import app
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model

    model_dir = save_pretrained_atomic(make_tiny_model("qwen2", tokenizer), tokenizer, tmp_path / "m")
    data = write_tiny_dataset(tmp_path / "ds", tiny_titles(40))
    args = ["mntp", "--model", str(model_dir), "--dataset", str(data), "--out", str(tmp_path / "o")]
    done = CliRunner().invoke(app, [*args, "--max-steps", "2", "--preset", "cpu", "--set", "progress=false"])
    assert done.exit_code == 0, done.output
    assert "held-out loss" in done.output
    assert json.loads((tmp_path / "o" / "mntp.json").read_text())["last_step"] == 2


def test_tensorboard_logs_are_published_with_the_model(tmp_path, tokenizer):
    pytest.importorskip("tensorboard")
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model
    from llm2rec.train.mntp import run_mntp

    model_dir = save_pretrained_atomic(make_tiny_model("qwen2", tokenizer), tokenizer, tmp_path / "base")
    data = write_tiny_dataset(tmp_path / "ds", tiny_titles(40))
    out = run_mntp(model_dir, data, tmp_path / "mntp", preset="cpu", max_steps=2, progress=False,
                   report_to="tensorboard")  # fmt: skip
    assert len(list((out / "logs").glob("events.out.tfevents*"))) == 1
    assert not (tmp_path / "mntp.work").exists()
