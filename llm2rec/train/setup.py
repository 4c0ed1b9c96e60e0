"""Accelerator and optimizer set-up for the training loop: precision, trackers, weight-decay groups."""

from __future__ import annotations

import torch

from llm2rec.errors import ConfigError


def check_tracker(name: str | None) -> None:
    """Accelerate silently drops a tracker whose package is missing; a user who asked for one wants to know."""
    if not name:
        return
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    if name not in LoggerType.list():
        raise ConfigError(f"report_to must be one of {', '.join(LoggerType.list())}, not {name!r}")
    if name != "all" and name not in [str(t) for t in get_available_trackers()]:
        raise ConfigError(f"report_to={name} needs its package: pip install {name}")


def param_groups(model, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only, never on norms and biases (nanoGPT's rule)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("the model has no trainable parameters")
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def resolve_precision(name: str) -> str:
    if name != "auto":
        return name
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
