"""Accelerator and optimizer set-up for the training loop: precision, trackers, weight-decay groups."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from llm2rec.errors import ConfigError

log = logging.getLogger(__name__)


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


def resolve_precision(name: str, say: bool = True) -> str:
    """``auto``: bf16 autocast (fp32 master weights) where bf16 matmuls are native, else full fp32 (``no``);
    ``say=False`` only answers (for a stage's record), without logging the fp32 fallback again."""
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    if cpu_has_native_bf16():
        return "bf16"
    if not say:
        return "no"
    # Said once per stage, because every CPU timing the docs quote was measured with native bf16.
    log.info(
        "mixed_precision auto: this CPU has no native bf16 (AMX / AVX512-BF16), so training runs in fp32, "
        "about 2.5x slower per step than the CPU timings in the docs (measured on a CPU with AMX)"
    )
    return "no"


def cpu_has_native_bf16() -> bool:
    """Whether this CPU multiplies bf16 in hardware (Intel AMX or AVX512-BF16, read from /proc/cpuinfo).

    There, bf16 autocast makes a SmolLM2 training step about 2x faster (matmuls ~7x: see
    benchmarks/cpu_bf16.py); elsewhere bf16 is emulated and slower than fp32, so ``auto`` keeps fp32."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), []
    )
    return "amx_bf16" in flags or "avx512_bf16" in flags


def allow_precision(mixed_precision: str) -> str:
    """Let this process build an Accelerator with ``mixed_precision`` although an earlier stage in the same
    process (``llm2rec run``: CSFT, MNTP, contrastive) built one with another: Accelerate keeps one global
    state and refuses a change. Only that state is cleared; the process group (PartialState) is kept.
    Returns ``mixed_precision``."""
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mixed_precision):
        AcceleratorState._reset_state(reset_partial_state=False)
    return mixed_precision


def free_accelerator(accelerator) -> None:
    """Drop what ``accelerator`` prepared (model, optimizer, their gradients and Adam states: ~2 GB for a
    135M model in fp32): ``llm2rec run`` trains the next stage in the same process."""
    import gc

    accelerator.free_memory()
    gc.collect()
