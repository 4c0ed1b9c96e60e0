"""Accelerator and optimizer set-up for the training loop: precision, trackers, weight-decay groups, and
which kinds of parallelism the loop runs under (DDP, FSDP; DeepSpeed is refused)."""

from __future__ import annotations

import logging
import os
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
    from accelerate.state import AcceleratorState, PartialState

    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mixed_precision):
        AcceleratorState._reset_state(reset_partial_state=False)
        partial = PartialState._shared_state
        if partial.get("distributed_type") == "FSDP":
            # The first AcceleratorState wrote FSDP over the launcher's type (MULTI_GPU): a new one would
            # keep it and build no FSDP plugin, so it starts again from the type the launcher gave.
            _, partial["distributed_type"] = PartialState()._prepare_backend(
                cpu=partial.get("_cpu", False), backend=partial.get("backend")
            )
    return mixed_precision


def free_accelerator(accelerator) -> None:
    """Drop what ``accelerator`` prepared (model, optimizer, their gradients and Adam states: ~2 GB for a
    135M model in fp32): ``llm2rec run`` trains the next stage in the same process."""
    import gc

    accelerator.free_memory()
    gc.collect()


def make_accelerator(config, out_dir: Path):
    """The run's Accelerator. Precision is the stage's ``mixed_precision`` (an Accelerate config's own
    ``mixed_precision`` is not read); the kind of parallelism (DDP, FSDP) is Accelerate's config."""
    from accelerate import Accelerator

    from llm2rec.distributed import has_accelerator_device, refuse_deepspeed

    refuse_deepspeed()  # before Accelerate reads a DeepSpeed config (it would import deepspeed)
    check_tracker(config.report_to)
    return Accelerator(
        cpu=not has_accelerator_device(),  # else Accelerate ignores torchrun's env on CPU (no gloo DDP)
        mixed_precision=allow_precision(resolve_precision(config.mixed_precision)),
        log_with=config.report_to,
        project_dir=str(out_dir) if config.report_to else None,
    )


def configure_parallelism(accelerator, model, accumulation_steps: int) -> bool:
    """Refuse what the loop does not run under, and set Accelerate's gradient accumulation to the loop's
    (``batch_size`` / (``micro_batch`` × processes)); returns whether the model is sharded (FSDP)."""
    from llm2rec.distributed import refuse_deepspeed

    refuse_deepspeed(accelerator.state)
    kind = getattr(accelerator.distributed_type, "value", accelerator.distributed_type)
    sharded = kind == "FSDP"
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true" and not sharded:
        import accelerate

        raise ConfigError(
            f"the Accelerate config asks for FSDP, but Accelerate {accelerate.__version__} shards only on GPUs: "
            f"these processes would run as {kind}, each holding the whole model; "
            "launch without --use_fsdp / distributed_type FSDP here (docs/reproduce.md, Several GPUs)"
        )
    if sharded and _is_peft(model):
        raise ConfigError(
            "LoRA under FSDP is not supported (the saved model could not merge the adapters): train LoRA "
            "with DDP (accelerate launch --multi_gpu)"
        )
    asked = os.environ.get("ACCELERATE_GRADIENT_ACCUMULATION_STEPS")
    if asked not in (None, "1", str(accumulation_steps)):
        log.warning(
            "the Accelerate config's gradient_accumulation_steps=%s is ignored: the stage's batch_size and "
            "micro_batch give %d micro-batches per step on each process",
            asked,
            accumulation_steps,
        )
    accelerator.gradient_accumulation_steps = accumulation_steps
    return sharded


def cache_off_for_checkpointing(accelerator, model) -> bool | None:
    """Under Accelerate's FSDP activation checkpointing, train without the model's KV cache: a layer whose
    forward is run again in backward would append its keys and values to the cache a second time
    (torch.utils.checkpoint.CheckpointError: recomputed values ... have different metadata). Hugging
    Face's own gradient checkpointing turns the cache off by itself; Accelerate's does not. Returns the
    value a saved config is to keep (None where nothing was changed)."""
    plugin = getattr(accelerator.state, "fsdp_plugin", None)
    config = getattr(model, "config", None)
    if plugin is None or not plugin.activation_checkpointing or not getattr(config, "use_cache", False):
        return None
    config.use_cache = False
    return True


def _is_peft(model) -> bool:
    try:
        from peft import PeftModel
    except ImportError:
        return False
    return isinstance(model, PeftModel)
