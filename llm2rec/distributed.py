"""The processes a command was launched with (``torchrun``, ``accelerate launch``), in one place.

Every multi-process part of llm2rec (the training loop, the contrastive loss, ``embed``, ``run``, the
command line) gets its process state here, so the first ``PartialState`` of a process is always created
the same way: on a CPU-only machine Accelerate must be told ``cpu=True`` or it ignores torchrun's
environment (no gloo DDP).
"""

from __future__ import annotations

import os
from datetime import timedelta

import torch


def launched_processes() -> int:
    """How many processes the launcher started (1 under plain ``python``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True in the launcher's process 0 (and under plain ``python``); read from the environment, so it
    needs no process group (the command line uses it to print one report, not one per process)."""
    return int(os.environ.get("RANK", "0")) == 0


def has_accelerator_device() -> bool:
    xpu = getattr(torch, "xpu", None)
    return (
        torch.cuda.is_available()
        or torch.backends.mps.is_available()
        or bool(xpu is not None and xpu.is_available())
    )


DEEPSPEED_REFUSED = (
    "DeepSpeed is not supported: it steps the optimizer inside accelerator.backward, where llm2rec's training "
    "loop steps its own (the effective batch would be wrong); launch with DDP (accelerate launch "
    "--multi_gpu) or FSDP (--use_fsdp; docs/reproduce.md, Several GPUs)"
)


def refuse_deepspeed(state=None) -> None:
    """Raise ConfigError under a DeepSpeed launch: ``accelerate launch --use_deepspeed`` (or a config with
    ``distributed_type: DEEPSPEED``) sets ``ACCELERATE_USE_DEEPSPEED``; an Accelerate ``state`` (an
    ``AcceleratorState``) may also carry a DeepSpeed plugin or distributed type."""
    from llm2rec.errors import ConfigError

    asked = os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true"
    if state is not None:
        kind = getattr(state, "distributed_type", None)
        asked = asked or getattr(kind, "value", kind) == "DEEPSPEED"
        asked = asked or getattr(state, "deepspeed_plugin", None) is not None
    if asked:
        raise ConfigError(DEEPSPEED_REFUSED)


def process_state(timeout: timedelta | None = None):
    """Accelerate's process state (rank, device). ``timeout`` bounds every collective wait, and only the
    first call in a process sets it (``llm2rec run`` makes it long: processes wait while the main one works).
    Refuses a DeepSpeed launch (:func:`refuse_deepspeed`) before Accelerate would import DeepSpeed."""
    from accelerate import PartialState

    refuse_deepspeed()
    kwargs = {"timeout": timeout} if timeout is not None else {}
    return PartialState(cpu=not has_accelerator_device(), **kwargs)


class Processes:
    """This process among those the launcher started, or alone under ``python`` (then no process group is
    made at all: ``state`` is None and :meth:`wait` does nothing)."""

    def __init__(self, timeout: timedelta | None = None):
        self.many = launched_processes() > 1
        self.state = process_state(timeout) if self.many else None
        self.main = self.state is None or self.state.is_main_process
        self.rank = self.state.process_index if self.state else 0
        self.world = self.state.num_processes if self.state else 1
        self.device = str(self.state.device) if self.state else None

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


# ------------------------------------------------------------------------------ collectives with gradients


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, or (0, 1) when there is none."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


def from_main_process(value):
    """``value`` as the main process has it, on every process (a picklable object; unchanged without a
    process group): decisions such as which checkpoint is best must not differ between processes."""
    _, size = world()
    if size == 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


def gather_no_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0 (no gradient)."""
    rank, size = world()
    if size == 1:
        return x
    parts = [torch.empty_like(x) for _ in range(size)]
    torch.distributed.all_gather(parts, x.contiguous())
    return torch.cat(parts, dim=0)


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each process the summed gradient of its own rows.

    Every process's loss depends on every process's embeddings, so the gradient for this process's rows is
    the sum over processes: one all_reduce, then keep our slice. (torch.distributed.nn's all_gather does the
    same through all_to_all, which is deprecated and aborted now and then at gloo shutdown in our tests.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rows = x.shape[0]
        return gather_no_grad(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad)
        rank, _ = world()
        return grad[rank * ctx.rows : (rank + 1) * ctx.rows]


def gather_with_grad(x: torch.Tensor) -> torch.Tensor:
    """Concatenate ``x`` from every process along dim 0; gradients flow back to each process's part.

    Every process must pass the same number of rows (the training loop's micro-batches are always full).
    """
    _, size = world()
    if size == 1:
        return x
    return _GatherWithGrad.apply(x)
