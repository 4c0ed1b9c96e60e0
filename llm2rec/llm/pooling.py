"""Turn per-token hidden states into one vector per text.

``mask`` is 1 for tokens that count (title tokens) and 0 for padding (or for a prompt that is attended to
but not pooled). Both work with left or right padding.
"""

from __future__ import annotations

from typing import Literal

import torch

Pooling = Literal["mean", "last"]
POOLINGS: tuple[str, ...] = ("mean", "last")
# The config.json key in which a trained encoder records its pooling, so a reload pools the same way.
POOLING_KEY = "llm2rec_pooling"


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of ``hidden[b, t]`` over the positions where ``mask[b, t]`` is 1, computed in float32."""
    weights = mask.to(torch.float32).unsqueeze(-1)
    total = (hidden.to(torch.float32) * weights).sum(dim=1)
    # clamp: an all-zero mask gives a zero vector instead of NaN
    return total / weights.sum(dim=1).clamp(min=1.0)


def last_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The hidden state of the last position whose mask is 1 (works for left and right padding)."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = torch.where(mask.bool(), positions, torch.full_like(positions, -1)).max(dim=1).values
    last = last.clamp(min=0)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last].to(torch.float32)


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Pool ``hidden`` (B, T, d) with ``mask`` (B, T) into (B, d) float32 by ``mode`` ("mean" or "last")."""
    if mode == "mean":
        return mean_pool(hidden, mask)
    if mode == "last":
        return last_pool(hidden, mask)
    raise ValueError(f"unknown pooling {mode!r}; expected one of {', '.join(POOLINGS)}")
