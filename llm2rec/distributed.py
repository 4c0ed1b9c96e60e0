"""The processes a command was launched with (``torchrun``, ``accelerate launch``), in one place.

Every multi-process part of llm2rec (the training loop, ``embed``, ``run``) gets its process state here, so
the first ``PartialState`` of a process is always created the same way: on a CPU-only machine Accelerate
must be told ``cpu=True`` or it ignores torchrun's environment (no gloo DDP).
"""

from __future__ import annotations

import os
from datetime import timedelta


def launched_processes() -> int:
    """How many processes the launcher started (1 under plain ``python``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def has_accelerator_device() -> bool:
    import torch

    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available()
        or torch.backends.mps.is_available()
        or bool(xpu is not None and xpu.is_available())
    )


def process_state(timeout: timedelta | None = None):
    """Accelerate's process state (rank, device). ``timeout`` bounds every collective wait, and only the
    first call in a process sets it (``llm2rec run`` makes it long: processes wait while the main one works)."""
    from accelerate import PartialState

    kwargs = {"timeout": timeout} if timeout is not None else {}
    return PartialState(cpu=not has_accelerator_device(), **kwargs)
