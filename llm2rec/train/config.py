"""Settings of the LLM stages: the training loop's, the fields every stage shares, presets and identity.

:class:`LoopConfig` is what the training loop reads. :class:`StageConfig` extends it with what every LLM
stage (CSFT, MNTP, contrastive) shares; each stage's config subclasses it, declares its own fields, and
restates only the defaults where the paper's value differs. Each stage keeps a ``PRESETS`` dict beside
its config; :func:`build_config` is the one way to combine them, and :func:`identity` is what the pipeline
hashes to decide whether a finished stage is still valid (so editing a preset in code re-runs the stages
it feeds).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from llm2rec.errors import ConfigError
from llm2rec.typed import validated

# Settings that change how a run is shown, where its checkpoints go or how much memory it takes, never the
# model it produces. (Gradient checkpointing recomputes each layer's forward pass, dropout masks included:
# the weights differ only by float rounding, as with another thread count; tests/train/test_contrastive.py.)
COSMETIC = frozenset(
    {
        "progress",
        "report_to",
        "log_every",
        "save_every",
        "keep_checkpoints",
        "keep_work",
        "gradient_checkpointing",
    }
)
# Old spellings still accepted in overrides (one release), with the field they now set.
RENAMED = {"effective_batch": "batch_size"}


@dataclass
class LoopConfig:
    """Settings of :func:`~llm2rec.train.loop.train_loop`. ``batch_size`` counts examples per optimizer
    step over all processes (the effective batch); it must be a multiple of ``micro_batch`` × processes."""

    max_steps: int
    batch_size: int
    micro_batch: int
    lr: float
    weight_decay: float = 0.0
    warmup_steps: int = 0
    # The linear decay's horizon: lr reaches 0 at this step, not at max_steps, so a run cut short (the
    # official MNTP/contrastive: planned over 3/5 epochs, stopped at 1k steps) ends above 0. At most one.
    schedule_steps: int | None = None
    schedule_epochs: float | None = None  # passes over the training set, converted with batch_size
    # Passes over the training set the run lasts: when given, it replaces max_steps with
    # ceil(max_epochs × steps per epoch) once the training set is known (an epoch is examples // batch_size
    # steps, as the sampler deals them), so "one pass" follows the data (another catalogue, a cold split,
    # a mix) instead of being counted by hand per dataset.
    max_epochs: float | None = None
    max_grad_norm: float | None = 1.0
    eval_every: int | None = None
    eval_at_start: bool = True  # the paper evaluates once before training; gives the "before" number
    save_every: int | None = None
    keep_checkpoints: int = 1
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "no"  # no | bf16 | fp16 | auto (bf16 where the GPU or CPU has native bf16)
    keep: str = "best"  # which model directory is handed on: best (lowest eval loss) or last
    length_grouped: bool = False
    group_size: int = 16  # global batches per length-sorted chunk when length_grouped
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = 1e-8
    num_workers: int = 0
    peak_tflops: float | None = None  # per device, for MFU; guessed for known GPUs and for CPUs
    report_to: str | None = None  # e.g. "tensorboard" (needs the tensorboard package)
    progress: bool = True

    def __post_init__(self) -> None:
        if self.max_steps < 1:
            raise ConfigError(f"max_steps must be >= 1, got {self.max_steps}")
        if self.micro_batch < 1 or self.batch_size < self.micro_batch:
            raise ConfigError(
                f"need 1 <= micro_batch <= batch_size, got {self.micro_batch} and {self.batch_size}"
            )
        if self.keep not in ("best", "last"):
            raise ConfigError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            raise ConfigError(f"mixed_precision must be no, bf16, fp16 or auto, got {self.mixed_precision!r}")
        if self.schedule_steps is not None and self.schedule_epochs is not None:
            raise ConfigError("give schedule_steps or schedule_epochs, not both")
        if self.schedule_steps is not None and self.schedule_steps < self.max_steps:
            raise ConfigError(
                f"schedule_steps ({self.schedule_steps}) must be >= max_steps ({self.max_steps}):"
                " the lr would sit at 0 for the last steps"
            )
        if self.schedule_epochs is not None and self.schedule_epochs <= 0:
            raise ConfigError(f"schedule_epochs must be > 0, got {self.schedule_epochs}")
        if self.max_epochs is not None and self.max_epochs <= 0:
            raise ConfigError(f"max_epochs must be > 0, got {self.max_epochs}")
        self.adam_betas = tuple(self.adam_betas)

    def for_examples(self, num_examples: int):
        """This config for a training set of ``num_examples``: ``max_epochs`` turned into ``max_steps``
        (at least one step); unchanged when ``max_epochs`` is not set."""
        if self.max_epochs is None:
            return self
        steps = max(1, math.ceil(self.max_epochs * (num_examples // self.batch_size)))
        return dataclasses.replace(self, max_steps=steps, max_epochs=None)

    def schedule_horizon(self, num_examples: int) -> int:
        """The step at which the linear decay reaches 0 (never before ``max_steps``)."""
        if self.schedule_steps is not None:
            return self.schedule_steps
        if self.schedule_epochs is not None:
            return max(self.max_steps, math.ceil(self.schedule_epochs * num_examples / self.batch_size))
        return self.max_steps

    def accumulation_steps(self, num_processes: int) -> int:
        per_step = self.micro_batch * num_processes
        if self.batch_size % per_step:
            raise ConfigError(
                f"batch_size {self.batch_size} is not a multiple of micro_batch {self.micro_batch}"
                f" × {num_processes} process(es)"
            )
        return self.batch_size // per_step


@dataclass
class StageConfig(LoopConfig):
    """The loop's settings plus what every LLM stage shares. Subclasses give ``max_steps``,
    ``batch_size``, ``micro_batch`` and ``lr`` their paper defaults."""

    mixed_precision: str = "auto"  # bf16 autocast, fp32 master weights, where bf16 is native (GPU, AMX CPU)
    max_length: int = 512  # tokens per example; longer inputs are truncated
    attn_implementation: str = "sdpa"
    gradient_checkpointing: bool = False
    keep_work: bool = False  # keep <out>.work (checkpoints, best and last) after publishing
    # What "best" means at each evaluation: the stage's eval loss, the valid split's knn Recall@20 of the
    # stage's own item vectors (llm2rec.train.probe), or the valid Recall@20 of a SASRec trained on them
    # (sasrec: the criterion closest to what the vectors are for, a recommender per evaluation).
    select_by: str = "loss"
    # The settings of the select_by=sasrec probe's recommender (a run's seqrec.options; empty: the seqrec
    # defaults), so that it trains "exactly as llm2rec seqrec" trains the run's rows.
    probe_seqrec: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.select_by not in ("loss", "knn", "sasrec"):
            raise ConfigError(f"select_by must be 'loss', 'knn' or 'sasrec', got {self.select_by!r}")


PRESET_NAMES = ("auto", "paper", "cpu")  # auto: paper on a GPU, cpu elsewhere (resolve_preset)
DEFAULT_PRESET = "auto"  # every entry point's: llm2rec run, the stage commands, the Python functions


def resolve_preset(preset: str, say: bool = True) -> str:
    """``auto`` → ``paper`` where a CUDA GPU is present, ``cpu`` elsewhere (said once in the log);
    another name is returned as is (an unknown one is refused by :func:`build_config`)."""
    if preset != "auto":
        return preset
    import logging

    import torch

    chosen = "paper" if torch.cuda.is_available() else "cpu"
    if say:
        where = "a GPU" if chosen == "paper" else "no GPU"
        logging.getLogger("llm2rec").info("preset auto: %s (%s found)", chosen, where)
    return chosen


def build_config(cls, presets: dict[str, dict], preset: str, overrides: dict, where: str | None = None):
    """``cls`` with the preset's values, then every non-None override.

    Dotted or dashed keys (``lora.r``, ``max-steps``) name the field with underscores; unknown keys are errors.
    ``where`` names the settings in messages (a run config's section, ``csft``; default: ``cls``'s name).
    """
    where = where or cls.__name__
    preset = resolve_preset(preset, say=False)
    if preset not in presets:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(PRESET_NAMES)}")
    values = dict(presets[preset])
    for key, value in overrides.items():
        if value is not None:
            key = key.replace(".", "_").replace("-", "_")
            values[RENAMED.get(key, key)] = value
    unknown = set(values) - set(cls.__dataclass_fields__)
    if unknown:
        raise ConfigError(
            f"{', '.join(f'{where}.{key}' for key in sorted(unknown))}: unknown setting (a typo?) of "
            f"{cls.__name__}; known: {', '.join(cls.__dataclass_fields__)}"
        )
    # Every value checked against its field's type here, not hours later inside the training code.
    return validated(cls, values, where=where)


# Settings added after run directories existed, left out of a stage's identity while at this default, so
# that a finished stage whose settings did not change is not trained again after an upgrade.
ADDED_LATER = {"max_epochs": None, "probe_seqrec": {}}


def identity(config) -> dict:
    """The settings that decide what a stage produces: every field but the cosmetic ones (and the later
    additions still at their defaults)."""
    return {
        k: v
        for k, v in dataclasses.asdict(config).items()
        if k not in COSMETIC and not (k in ADDED_LATER and v == ADDED_LATER[k])
    }
