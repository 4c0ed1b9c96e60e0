"""Bidirectional attention, proven on tiny random models of every installed family × attention backend."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
import transformers

from llm2rec.llm.bidirectional import (
    apply_saved_attention,
    disable_bidirectional,
    enable_bidirectional,
    is_bidirectional,
    probe_bidirectional,
)

VOCAB = 64
COMMON = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=64,
    pad_token_id=0,
)
FAMILIES = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 8}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": None}),
    "gemma": ("GemmaConfig", "GemmaForCausalLM", {"head_dim": 8}),
    "gemma2": ("Gemma2Config", "Gemma2ForCausalLM", {"head_dim": 8, "attn_logit_softcapping": None}),
    "gemma3": ("Gemma3TextConfig", "Gemma3ForCausalLM", {"head_dim": 8, "attn_logit_softcapping": None}),
}
FAMILIES = {k: v for k, v in FAMILIES.items() if hasattr(transformers, v[1])}
IMPLS = ["eager", "sdpa"] + (["flash_attention_2"] if importlib.util.find_spec("flash_attn") else [])


def tiny(family: str, attn: str) -> torch.nn.Module:
    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(0)
    config = getattr(transformers, config_cls)(**COMMON, **extra)
    config._attn_implementation = attn
    return getattr(transformers, model_cls)(config).eval()


def hidden(model, ids, mask=None):
    with torch.no_grad():
        return model.model(input_ids=ids, attention_mask=mask).last_hidden_state


def _supports(family: str, attn: str) -> bool:
    cls = getattr(transformers, FAMILIES[family][1])
    flag = {"eager": True, "sdpa": cls._supports_sdpa, "flash_attention_2": cls._supports_flash_attn}[attn]
    return bool(flag)


# Gemma2 has no SDPA path in transformers (softcapping); every other pair is supported and tested.
CASES = [(f, a) for f in FAMILIES for a in IMPLS if _supports(f, a)]


@pytest.mark.parametrize(("family", "attn"), CASES)
def test_causal_by_default_then_bidirectional(family, attn):
    model = tiny(family, attn)
    a = torch.tensor([[5, 6, 7, 8, 9]])
    b = torch.tensor([[5, 6, 7, 8, 10]])  # differs only in the last token
    causal_a, causal_b = hidden(model, a), hidden(model, b)
    assert torch.allclose(causal_a[:, :4], causal_b[:, :4], atol=1e-6)  # causal: past unaffected

    enable_bidirectional(model)
    assert is_bidirectional(model)
    bi_a, bi_b = hidden(model, a), hidden(model, b)
    assert not torch.allclose(bi_a[0, 0], bi_b[0, 0], atol=1e-4)
    # the same holds with an explicit all-ones mask (a path where the mask may be skipped)
    ones = torch.ones_like(a)
    assert not torch.allclose(hidden(model, a, ones)[0, 0], hidden(model, b, ones)[0, 0], atol=1e-4)
    assert probe_bidirectional(model)

    disable_bidirectional(model)
    assert not is_bidirectional(model)
    assert torch.allclose(hidden(model, a), causal_a, atol=1e-6)
    assert not probe_bidirectional(model)


@pytest.mark.parametrize(("family", "attn"), CASES)
@pytest.mark.parametrize("side", ["left", "right"])
def test_padding_never_changes_real_tokens(family, attn, side):
    model = enable_bidirectional(tiny(family, attn))
    short = [5, 6, 7]
    long = [11, 12, 13, 14, 15, 16]
    pad = [0] * (len(long) - len(short))
    padded = pad + short if side == "left" else short + pad
    mask = [0] * len(pad) + [1] * 3 if side == "left" else [1] * 3 + [0] * len(pad)
    ids = torch.tensor([padded, long])
    out = hidden(model, ids, torch.tensor([mask, [1] * len(long)]))
    alone_short = hidden(model, torch.tensor([short]))[0]
    alone_long = hidden(model, torch.tensor([long]))[0]
    real = slice(len(pad), None) if side == "left" else slice(0, 3)
    assert torch.allclose(out[0, real], alone_short, atol=1e-5)
    assert torch.allclose(out[1], alone_long, atol=1e-5)
    # and the padding tokens' values do not leak in: change them
    other = torch.tensor([[9 if m == 0 else t for t, m in zip(padded, mask, strict=True)], long])
    out2 = hidden(model, other, torch.tensor([mask, [1] * len(long)]))
    assert torch.allclose(out2[0, real], out[0, real], atol=1e-6)


@pytest.mark.parametrize("attn", IMPLS)
def test_flag_survives_save_and_reload(tmp_path, attn):
    model = enable_bidirectional(tiny("qwen2", "sdpa"))
    model.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["llm2rec_bidirectional"] is True
    assert saved["is_causal"] is False

    reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation=attn)
    assert is_bidirectional(reloaded)
    apply_saved_attention(reloaded)
    assert probe_bidirectional(reloaded)


@pytest.mark.parametrize(("family", "attn"), CASES)
def test_plain_transformers_reload_keeps_bidirectional(tmp_path, family, attn):
    # A saved encoder must stay bidirectional even for users who load it with transformers alone.
    enable_bidirectional(tiny(family, attn)).save_pretrained(tmp_path)
    plain = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, attn_implementation=attn)
    assert probe_bidirectional(plain)


def test_causal_model_stays_causal_after_apply(tmp_path):
    model = tiny("llama", "sdpa")
    assert not is_bidirectional(model)
    assert not probe_bidirectional(apply_saved_attention(model))
