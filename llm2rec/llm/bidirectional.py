"""Bidirectional attention for decoder-only Hugging Face models (Llama, Qwen2/3, Mistral, Gemma 1-3).

LLM2Rec's MNTP, contrastive and extraction stages need every token to see the whole title. The official
code lost this silently under SDPA/eager attention (llm2vec's Qwen2 port only flipped ``is_causal`` on the
attention modules, which FA2 honours but the 4-D mask path does not).

transformers 5.x has a first-class switch, and we use it: ``config.is_causal = False``.

- ``masking_utils.create_causal_mask`` (and the sliding-window variant) then builds a *bidirectional* mask:
  padding is still masked, future tokens are not (eager and SDPA with padding).
- The base model's ``forward`` wrapper (``utils/generic.py``) passes ``is_causal=False`` down to the
  attention functions, so SDPA and flash-attention run non-causally when the mask builder returns
  ``None`` (a batch without padding).

We also set ``is_causal = False`` on every attention module, the attribute those functions fall back to
when no ``is_causal`` kwarg arrives (e.g. a custom forward that bypasses the wrapper), so neither path can
silently stay causal. The mode is recorded in the config (``is_causal: false`` and
``llm2rec_bidirectional: true``) and therefore in ``config.json``. Loading such a directory with plain
``transformers`` (``AutoModel*.from_pretrained``) already gives bidirectional attention; our loader calls
:func:`apply_saved_attention` as well, and :func:`probe_bidirectional` checks it at run time.
"""

from __future__ import annotations

import torch
from torch import nn

CONFIG_FLAG = "llm2rec_bidirectional"


def _configs(model: nn.Module) -> list:
    """The config objects whose ``is_causal`` the mask builders read (composite models have a text one)."""
    config = model.config
    found = [config]
    text = getattr(config, "text_config", None)
    if text is not None and text is not config:
        found.append(text)
    return found


def _attention_modules(model: nn.Module) -> list[nn.Module]:
    # Attention modules are the ones carrying a boolean ``is_causal``; the model itself never does.
    return [m for m in model.modules() if m is not model and isinstance(getattr(m, "is_causal", None), bool)]


def set_attention_mode(model: nn.Module, bidirectional: bool) -> nn.Module:
    """Switch ``model`` (in place) to bidirectional or causal attention and record it in its config."""
    modules = _attention_modules(model)
    if not modules:
        raise ValueError(
            f"{type(model).__name__} has no attention module with an `is_causal` flag; "
            "bidirectional attention is not supported for this architecture"
        )
    for config in _configs(model):
        config.is_causal = not bidirectional
        setattr(config, CONFIG_FLAG, bool(bidirectional))
    for module in modules:
        module.is_causal = not bidirectional
    return model


def enable_bidirectional(model: nn.Module) -> nn.Module:
    """Make every token attend to every non-padding token; recorded in ``model.config``."""
    return set_attention_mode(model, True)


def disable_bidirectional(model: nn.Module) -> nn.Module:
    """Restore standard causal attention."""
    return set_attention_mode(model, False)


def is_bidirectional(model_or_config) -> bool:
    """What the config (or a model's config) says: our flag, else transformers' ``is_causal``."""
    config = getattr(model_or_config, "config", model_or_config)
    flag = getattr(config, CONFIG_FLAG, None)
    if flag is not None:
        return bool(flag)
    return not getattr(config, "is_causal", True)


def apply_saved_attention(model: nn.Module) -> nn.Module:
    """After ``from_pretrained``: re-apply the attention mode recorded in the config (no-op for causal)."""
    if is_bidirectional(model):
        enable_bidirectional(model)
    return model


@torch.no_grad()
def probe_bidirectional(model: nn.Module, vocab_size: int | None = None) -> bool:
    """Run the model once and report whether position 0 sees the last token (i.e. attention is bidirectional).

    A cheap runtime check (one forward of 4 tokens) that the attention mode really took effect under the
    model's current attention implementation.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    inner = getattr(base, "model", base)  # the transformer without the LM head
    vocab = vocab_size or base.config.get_text_config().vocab_size
    device = next(base.parameters()).device
    ids = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5]], device=device) % vocab
    was_training = base.training
    base.eval()
    try:
        hidden = inner(input_ids=ids).last_hidden_state
    finally:
        base.train(was_training)
    return not torch.allclose(hidden[0, 0], hidden[1, 0])
