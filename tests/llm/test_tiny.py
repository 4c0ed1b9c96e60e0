"""Tiny in-process tokenizer and models used by every LLM test."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoTokenizer

from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return make_tiny_tokenizer()


def test_tokenizer_has_special_tokens_and_round_trips(tmp_path, tokenizer):
    assert tokenizer.eos_token is not None and tokenizer.unk_token is not None
    assert tokenizer.pad_token_id == tokenizer.eos_token_id
    text = "Microscope Slides, Größe 10 µl 😀"
    ids = tokenizer(text).input_ids
    assert tokenizer.unk_token_id not in ids  # byte-level: any text encodes
    assert tokenizer.decode(ids) == text
    tokenizer.save_pretrained(tmp_path)
    reloaded = AutoTokenizer.from_pretrained(tmp_path)
    assert reloaded(text).input_ids == ids
    assert reloaded.pad_token == tokenizer.pad_token and reloaded.eos_token == tokenizer.eos_token


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_tiny_model_matches_tokenizer_and_is_seeded(arch, tokenizer):
    before = torch.random.get_rng_state()
    model = make_tiny_model(arch, tokenizer, hidden_size=16, num_heads=2, seed=3)
    assert torch.equal(torch.random.get_rng_state(), before)  # the caller's RNG is untouched
    assert model.config.model_type == arch
    assert model.get_input_embeddings().weight.shape[0] == len(tokenizer)
    same = make_tiny_model(arch, tokenizer, hidden_size=16, num_heads=2, seed=3)
    other = make_tiny_model(arch, tokenizer, hidden_size=16, num_heads=2, seed=4)
    w = model.get_input_embeddings().weight
    assert torch.equal(w, same.get_input_embeddings().weight)
    assert not torch.equal(w, other.get_input_embeddings().weight)
    batch = tokenizer(["Safety Goggles", "Nitrile Gloves Large Box"], padding=True, return_tensors="pt")
    logits = model(**batch).logits
    assert logits.shape == (2, batch["input_ids"].shape[1], len(tokenizer))


def test_tiny_model_accepts_config_overrides_and_rejects_unknown_arch(tokenizer):
    model = make_tiny_model("llama", tokenizer, attention_dropout=0.2, attn_implementation="eager")
    assert model.config.attention_dropout == 0.2
    assert model.config._attn_implementation == "eager"
    with pytest.raises(ValueError, match="gpt2"):
        make_tiny_model("gpt2", tokenizer)
