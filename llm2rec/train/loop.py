"""The one training loop every LLM stage (CSFT, MNTP, contrastive) runs on, built on Accelerate.

What a stage supplies: a map-style dataset, a ``collate_fn``, and a ``loss_fn(model, batch, accelerator)``
returning ``(loss, metrics)``. The loop does the rest: gradient accumulation to an effective batch, AdamW,
linear warm-up then linear decay, clipping, mixed precision, periodic evaluation and checkpoints, exact
resume, best/last model directories, a progress bar with tokens/s and MFU, and ``metrics.jsonl``.

The same code runs under ``python``, ``torchrun`` and ``accelerate launch``: the loop itself decides which
examples each process sees (see :func:`plan_epoch`), so a global batch is the same set of examples, split
into the same micro-batches, whatever the number of processes. That is what makes N processes equal one
process with the same effective batch, and makes resume exact without relying on sampler state.

Layout of ``out_dir``::

    metrics.jsonl             one JSON object per log / eval event
    checkpoints/step-000300/  Accelerate state (model, optimizer, scheduler, RNG) + loop_state.json
    best/  last/              plain Hugging Face directories written by ``save_fn``
    done.json                 the LoopResult of a finished run (a re-run returns it at once)
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from llm2rec.distributed import has_accelerator_device
from llm2rec.errors import ConfigError
from llm2rec.io import atomic_write_json
from llm2rec.train.outputs import TRACKER_RUN

log = logging.getLogger(__name__)

LossFn = Callable[[Any, dict, Any], "tuple[torch.Tensor, dict[str, float]]"]
EvalFn = Callable[[Any, Any, Any], dict]
SaveFn = Callable[[Any, Any, Path], Any]

# Settings that decide which examples land in which step: a resume must not change them.
_DATA_ORDER_KEYS = ("effective_batch", "micro_batch", "seed", "length_grouped", "group_size")


@dataclass
class LoopConfig:
    """Settings of :func:`train_loop`. ``effective_batch`` counts examples per optimizer step over all
    processes; it must be a multiple of ``micro_batch`` × number of processes."""

    max_steps: int
    effective_batch: int
    micro_batch: int
    lr: float
    weight_decay: float = 0.0
    warmup_steps: int = 0
    max_grad_norm: float | None = 1.0
    eval_every: int | None = None
    eval_at_start: bool = True  # the paper evaluates once before training; gives the "before" number
    save_every: int | None = None
    keep_checkpoints: int = 1
    log_every: int = 10
    seed: int = 0
    mixed_precision: str = "no"  # no | bf16 | fp16 | auto (bf16 on a GPU that has it, else no)
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
        if self.micro_batch < 1 or self.effective_batch < self.micro_batch:
            raise ConfigError(
                f"need 1 <= micro_batch <= effective_batch, got {self.micro_batch} and {self.effective_batch}"
            )
        if self.keep not in ("best", "last"):
            raise ConfigError(f"keep must be 'best' or 'last', got {self.keep!r}")
        if self.mixed_precision not in ("no", "bf16", "fp16", "auto"):
            raise ConfigError(f"mixed_precision must be no, bf16, fp16 or auto, got {self.mixed_precision!r}")
        self.adam_betas = tuple(self.adam_betas)

    def accumulation_steps(self, num_processes: int) -> int:
        per_step = self.micro_batch * num_processes
        if self.effective_batch % per_step:
            raise ConfigError(
                f"effective_batch {self.effective_batch} is not a multiple of micro_batch {self.micro_batch}"
                f" × {num_processes} process(es)"
            )
        return self.effective_batch // per_step


def loop_config_from(stage_config, **fixed) -> LoopConfig:
    """The :class:`LoopConfig` of a stage config: every field the two share (a stage's ``batch_size`` is the
    effective batch), then ``fixed`` (e.g. ``keep="last"``)."""
    from dataclasses import fields

    values = {
        f.name: getattr(stage_config, f.name) for f in fields(LoopConfig) if hasattr(stage_config, f.name)
    }
    if "effective_batch" not in values and hasattr(stage_config, "batch_size"):
        values["effective_batch"] = stage_config.batch_size
    return LoopConfig(**{**values, **fixed})


@dataclass
class LoopResult:
    chosen_dir: Path
    best_step: int | None
    last_step: int
    history: list[dict] = field(default_factory=list)
    best_loss: float | None = None
    best_dir: Path | None = None
    last_dir: Path | None = None

    def to_json(self) -> dict:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> LoopResult:
        data = dict(data)
        for key in ("chosen_dir", "best_dir", "last_dir"):
            if data.get(key) is not None:
                data[key] = Path(data[key])
        return cls(**data)


# ----------------------------------------------------------------------------------------------- data order
def plan_epoch(
    num_examples: int, config: LoopConfig, epoch: int, lengths: Sequence[int] | None = None
) -> list[list[int]]:
    """The global batches of one epoch: ``effective_batch`` example indices each, a pure function of
    (seed, epoch). The incomplete last batch is dropped. With ``lengths``, examples are sorted by length
    within chunks of ``group_size`` batches so each batch (and each micro-batch) holds similar lengths;
    the batch order is then shuffled so long and short batches alternate across the epoch."""
    size = config.effective_batch
    steps = num_examples // size
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    order = torch.randperm(num_examples, generator=generator).tolist()[: steps * size]
    if lengths is not None:
        chunk = size * config.group_size
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda j: -lengths[j])
        ]
    batches = [order[k * size : (k + 1) * size] for k in range(steps)]
    if lengths is not None:
        batches = [batches[k] for k in torch.randperm(steps, generator=generator).tolist()]
    return batches


def micro_batches_for(global_batch: list[int], micro_batch: int, rank: int, world: int) -> list[list[int]]:
    """This process's micro-batches of a global batch: micro-batch j goes to process j % world."""
    chunks = [global_batch[i : i + micro_batch] for i in range(0, len(global_batch), micro_batch)]
    return chunks[rank::world]


class _StepSampler:
    """Yields this process's micro-batch index lists for steps ``start..max_steps-1``, in order."""

    def __init__(self, num_examples, config, lengths, start_step, rank, world):
        self.num_examples, self.config, self.lengths = num_examples, config, lengths
        self.start_step, self.rank, self.world = start_step, rank, world
        self.steps_per_epoch = num_examples // config.effective_batch

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while step < self.config.max_steps:
            epoch, position = divmod(step, self.steps_per_epoch)
            batches = plan_epoch(self.num_examples, self.config, epoch, self.lengths)
            for global_batch in batches[position:]:
                if step >= self.config.max_steps:
                    return
                yield from micro_batches_for(global_batch, self.config.micro_batch, self.rank, self.world)
                step += 1

    def __len__(self) -> int:
        per_step = self.config.effective_batch // (self.config.micro_batch * self.world)
        return (self.config.max_steps - self.start_step) * per_step


def dataset_lengths(dataset) -> list[int]:
    """Per-example lengths for length grouping: ``dataset.lengths`` if it has one, else ``len(input_ids)``."""
    lengths = getattr(dataset, "lengths", None)
    if lengths is not None:
        return list(lengths)
    try:
        return [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
    except (TypeError, KeyError) as exc:
        raise ConfigError("length_grouped needs a dataset with .lengths or items with 'input_ids'") from exc


# ------------------------------------------------------------------------------------------------ throughput
_GPU_PEAK_BF16_TFLOPS = {  # dense bf16 tensor-core peaks, for the MFU estimate only
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "A40": 149.7,
    "L40": 181.0,
    "A10": 125.0,
    "L4": 121.0,
    "4090": 165.2,
    "3090": 71.0,
    "A6000": 154.8,
    "V100": 125.0,
    "T4": 65.0,
}


def peak_flops(device: torch.device, config: LoopConfig) -> float | None:
    if config.peak_tflops:
        return config.peak_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v * 1e12 for k, v in _GPU_PEAK_BF16_TFLOPS.items() if k in name), None)
    if device.type == "cpu":
        # A rough AVX2 figure: 2 FMA units × 8 fp32 lanes × 2 flops at ~2.5 GHz per thread.
        return torch.get_num_threads() * 2.5e9 * 32
    return None


def flops_per_token(model) -> float:
    """6·N: forward 2N plus backward 4N per trained token (nanoGPT / PaLM convention, attention ignored)."""
    return 6.0 * sum(p.numel() for p in model.parameters())


def count_tokens(batch: dict) -> int:
    """Non-padding tokens of a batch (via attention_mask when present)."""
    if isinstance(batch, Mapping):
        if "attention_mask" in batch:
            return int(batch["attention_mask"].sum())
        if "input_ids" in batch:
            return int(batch["input_ids"].numel())
    return 0


# --------------------------------------------------------------------------------------------------- the loop
def train_loop(
    model,
    train_dataset,
    collate_fn: Callable,
    loss_fn: LossFn,
    config: LoopConfig,
    out_dir: str | Path,
    *,
    eval_dataset=None,
    eval_fn: EvalFn | None = None,
    tokenizer=None,
    resume: bool = True,
    save_fn: SaveFn | None = None,
) -> LoopResult:
    """Train ``model`` and return which saved model directory to hand on (see the module docstring).

    ``loss_fn(model, batch, accelerator) -> (loss, metrics)`` gets the prepared (possibly DDP-wrapped) model
    and a batch already on the device; ``loss`` is the mean over the micro-batch. ``eval_fn(model,
    eval_loader, accelerator) -> dict`` must return at least ``"loss"`` (lower is better) reduced over
    processes; the default is the mean of ``loss_fn`` over the evaluation set. Under DDP, ``eval_fn`` gets
    the bare module (not the DDP wrapper), and micro-batch j of the eval set goes to process j % world.
    ``save_fn(model, tokenizer,
    dir)`` writes a model directory; the default writes a plain HF directory (LoRA merged).
    With ``resume``, the run continues from the newest checkpoint in ``out_dir`` exactly as if never stopped.
    """
    from llm2rec.llm.backbone import save_pretrained_atomic

    out_dir = Path(out_dir)
    save_fn = save_fn or save_pretrained_atomic
    eval_fn = eval_fn or _mean_loss_eval(loss_fn)
    done = out_dir / "done.json"
    if resume and done.is_file():
        result = LoopResult.from_json(json.loads(done.read_text()))
        if result.last_step == config.max_steps:
            log.info("%s already finished %d steps; nothing to do", out_dir, result.last_step)
            return result

    run = _Run(
        model, train_dataset, collate_fn, loss_fn, eval_fn, save_fn, config, out_dir, eval_dataset, tokenizer
    )
    if resume:
        run.restore_latest()
    else:
        run.clear()
    return run.train()


def _mean_loss_eval(loss_fn: LossFn) -> EvalFn:
    def evaluate(model, eval_loader, accelerator) -> dict:
        total = torch.zeros(2, device=accelerator.device)  # (sum of loss × examples, examples)
        for batch in eval_loader:
            loss, _ = loss_fn(model, batch, accelerator)
            size = _batch_size(batch)
            total += torch.stack(
                [loss.detach().float() * size, torch.tensor(float(size), device=total.device)]
            )
        total = accelerator.reduce(total, reduction="sum")
        return {"loss": (total[0] / total[1].clamp(min=1)).item()}

    return evaluate


def _batch_size(batch) -> int:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return value.shape[0]
    return 1


class _Run:
    """State of one training run. Private: :func:`train_loop` is the API."""

    def __init__(
        self,
        model,
        train_dataset,
        collate_fn,
        loss_fn,
        eval_fn,
        save_fn,
        config,
        out_dir,
        eval_dataset,
        tokenizer,
    ):
        from accelerate import Accelerator
        from accelerate.utils import set_seed
        from transformers import get_linear_schedule_with_warmup

        self.config, self.out_dir = config, out_dir
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.collate_fn, self.loss_fn, self.eval_fn, self.save_fn = collate_fn, loss_fn, eval_fn, save_fn
        self.tokenizer = tokenizer
        _check_tracker(config.report_to)
        self.accelerator = Accelerator(
            cpu=not has_accelerator_device(),  # else Accelerate ignores torchrun's env on CPU (no gloo DDP)
            mixed_precision=_resolve_precision(config.mixed_precision),
            log_with=config.report_to,
            project_dir=str(out_dir) if config.report_to else None,
        )
        acc = self.accelerator
        self.accum = config.accumulation_steps(acc.num_processes)
        if len(train_dataset) < config.effective_batch:
            raise ConfigError(
                f"the training set has {len(train_dataset)} examples, fewer than one effective batch "
                f"({config.effective_batch})"
            )
        set_seed(config.seed)
        optimizer = torch.optim.AdamW(
            _param_groups(model, config.weight_decay),
            lr=config.lr,
            betas=config.adam_betas,
            eps=config.adam_eps,
        )
        self.model, self.optimizer = acc.prepare(model, optimizer)
        # Not prepared: Accelerate would step a prepared scheduler once per process per call.
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, config.warmup_steps, config.max_steps
        )
        acc.register_for_checkpointing(self.scheduler)
        self.lengths = dataset_lengths(train_dataset) if config.length_grouped else None
        self.flops_per_token = flops_per_token(acc.unwrap_model(self.model))
        self.peak = peak_flops(acc.device, config)
        self.step = 0
        self.history: list[dict] = []
        self.best_loss: float | None = None
        self.best_step: int | None = None
        if config.report_to:
            acc.init_trackers(TRACKER_RUN)
        if acc.is_main_process:
            out_dir.mkdir(parents=True, exist_ok=True)

    # -- checkpoints --------------------------------------------------------------------------------------
    @property
    def checkpoint_root(self) -> Path:
        return self.out_dir / "checkpoints"

    def checkpoints(self) -> list[Path]:
        if not self.checkpoint_root.is_dir():
            return []
        found = [p for p in self.checkpoint_root.glob("step-*") if (p / "loop_state.json").is_file()]
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def clear(self) -> None:
        """Forget a previous run in out_dir (resume=False)."""
        if self.accelerator.is_main_process:
            shutil.rmtree(self.checkpoint_root, ignore_errors=True)
            for name in ("metrics.jsonl", "done.json"):
                (self.out_dir / name).unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()

    def restore_latest(self) -> None:
        found = self.checkpoints()
        if not found:
            self.clear()
            return
        latest = found[-1]
        state = json.loads((latest / "loop_state.json").read_text())
        for key in _DATA_ORDER_KEYS:
            if state["config"].get(key) != getattr(self.config, key):
                raise ConfigError(
                    f"cannot resume from {latest}: {key} was {state['config'].get(key)!r}, now "
                    f"{getattr(self.config, key)!r}; use the same setting or start afresh (resume off)"
                )
        self.accelerator.load_state(str(latest))
        self.step, self.history = state["step"], state["history"]
        self.best_loss, self.best_step = state["best_loss"], state["best_step"]
        if self.accelerator.is_main_process:
            (self.out_dir / "done.json").unlink(missing_ok=True)
            _write_jsonl(self.out_dir / "metrics.jsonl", self.history)
        log.info("resumed from %s at step %d", latest, self.step)

    def save_checkpoint(self) -> None:
        acc = self.accelerator
        final = self.checkpoint_root / f"step-{self.step:06d}"
        tmp = self.checkpoint_root / f".step-{self.step:06d}.tmp"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        acc.wait_for_everyone()
        if acc.is_main_process:
            state = {
                "step": self.step,
                "epoch": self.step // self.steps_per_epoch,
                "batch_in_epoch": self.step % self.steps_per_epoch,
                "best_loss": self.best_loss,
                "best_step": self.best_step,
                "history": self.history,
                "config": asdict(self.config),
            }
            atomic_write_json(tmp / "loop_state.json", state)  # written last: marks the checkpoint complete
            shutil.rmtree(final, ignore_errors=True)
            tmp.rename(final)
            for old in self.checkpoints()[: -max(self.config.keep_checkpoints, 1)]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def save_model(self, name: str) -> Path:
        target = self.out_dir / name
        if self.accelerator.is_main_process:
            self.save_fn(self.accelerator.unwrap_model(self.model), self.tokenizer, target)
        self.accelerator.wait_for_everyone()
        return target

    # -- evaluation and logging -----------------------------------------------------------------------------
    def evaluate(self) -> None:
        if self.eval_dataset is None:
            return
        acc = self.accelerator
        rank, world = acc.process_index, acc.num_processes
        # The same micro-batches as one process would use, dealt round-robin: the default (per-batch mean)
        # eval loss is then independent of the number of processes. Processes may get one batch less, so
        # a loss_fn with collectives (all-gather) needs an eval set of whole rounds or its own eval_fn.
        indices = list(range(len(self.eval_dataset)))
        size = self.config.micro_batch
        batches = [indices[i : i + size] for i in range(0, len(indices), size)][rank::world]
        loader = torch.utils.data.DataLoader(
            self.eval_dataset,
            batch_sampler=batches,
            collate_fn=self.collate_fn,
            num_workers=0,
            generator=torch.Generator(),
        )
        # Evaluate through the bare module under DDP: the DDP wrapper broadcasts buffers on every forward,
        # a collective that deadlocks when processes get different numbers of eval batches.
        model = (
            self.model.module
            if isinstance(self.model, torch.nn.parallel.DistributedDataParallel)
            else self.model
        )
        self.model.eval()
        with torch.no_grad(), acc.autocast():
            metrics = self.eval_fn(model, _OnDevice(loader, acc.device), acc)
        self.model.train()
        if "loss" not in metrics:
            raise ValueError("eval_fn must return a dict with 'loss'")
        self.record({"step": self.step, "split": "eval", **metrics})
        # The evaluation before training is a reference point, not a candidate: the stage hands on a
        # trained model (as the paper's Trainer, whose best is chosen among saved checkpoints).
        if self.step > 0 and (self.best_loss is None or metrics["loss"] < self.best_loss):
            self.best_loss, self.best_step = float(metrics["loss"]), self.step
            if self.config.keep == "best":
                self.save_model("best")

    def record(self, entry: dict) -> None:
        entry = {k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in entry.items()}
        self.history.append(entry)
        if self.accelerator.is_main_process:
            with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
        if self.config.report_to:
            numbers = {f"{entry['split']}/{k}": v for k, v in entry.items() if isinstance(v, int | float)}
            self.accelerator.log(numbers, step=entry["step"])

    # -- training -------------------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_dataset) // self.config.effective_batch

    def train(self) -> LoopResult:
        from tqdm.auto import tqdm

        acc, cfg = self.accelerator, self.config
        if self.step == 0 and cfg.eval_at_start:
            self.evaluate()
        sampler = _StepSampler(
            len(self.train_dataset), cfg, self.lengths, self.step, acc.process_index, acc.num_processes
        )
        # Its own generator: creating a loader iterator otherwise draws from the global RNG, which would
        # make a resumed run (new iterator mid-training) drift from an uninterrupted one.
        loader = torch.utils.data.DataLoader(
            self.train_dataset,
            batch_sampler=sampler,
            collate_fn=self.collate_fn,
            num_workers=cfg.num_workers,
            generator=torch.Generator(),
        )
        micro_batches = iter(_OnDevice(loader, acc.device))
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            disable=not (cfg.progress and acc.is_main_process),
            desc="train",
            dynamic_ncols=True,
        )
        window = _Window()
        self.model.train()
        while self.step < cfg.max_steps:
            loss, metrics, tokens, grad_norm = self.train_step(micro_batches)
            self.step += 1
            bar.update(1)
            window.add(loss, metrics, tokens)
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                entry = self.log_entry(window, grad_norm)
                bar.set_postfix(
                    loss=f"{entry['loss']:.4f}",
                    tok_s=f"{entry['tokens_per_s']:.0f}",
                    mfu=f"{entry['mfu']:.1%}" if entry["mfu"] is not None else "?",
                )
                window = _Window()
            if cfg.eval_every and self.step % cfg.eval_every == 0:
                self.evaluate()
            if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.max_steps:
                self.save_checkpoint()
        bar.close()
        return self.finish()

    def train_step(self, micro_batches) -> tuple[float, dict, int, float | None]:
        acc, cfg = self.accelerator, self.config
        total_loss, metric_sums, tokens = 0.0, {}, 0
        for k in range(self.accum):
            batch = next(micro_batches)
            tokens += count_tokens(batch)
            # Gradients are all-reduced only on the last micro-batch of the step.
            sync = acc.no_sync(self.model) if k < self.accum - 1 else contextlib.nullcontext()
            with sync:
                with acc.autocast():
                    loss, metrics = self.loss_fn(self.model, batch, acc)
                acc.backward(loss / self.accum)
            total_loss += loss.detach().float().item() / self.accum
            for key, value in metrics.items():
                metric_sums[key] = metric_sums.get(key, 0.0) + float(value) / self.accum
        grad_norm = None
        if cfg.max_grad_norm:
            grad_norm = float(acc.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm))
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return total_loss, metric_sums, tokens, grad_norm

    def log_entry(self, window: _Window, grad_norm: float | None) -> dict:
        acc = self.accelerator
        sums = torch.tensor([window.loss, float(window.tokens)], device=acc.device, dtype=torch.float64)
        sums = acc.reduce(sums, reduction="sum")
        loss = sums[0].item() / (window.steps * acc.num_processes)
        elapsed = max(time.perf_counter() - window.start, 1e-9)
        tokens_per_s = sums[1].item() / elapsed
        mfu = tokens_per_s * self.flops_per_token / (self.peak * acc.num_processes) if self.peak else None
        entry = {
            "step": self.step,
            "split": "train",
            "loss": loss,
            "lr": self.scheduler.get_last_lr()[0],
            "grad_norm": grad_norm,
            "tokens_per_s": tokens_per_s,
            "mfu": mfu,
            **{k: v / window.steps for k, v in window.metrics.items()},
        }
        self.record(entry)
        return entry

    def finish(self) -> LoopResult:
        acc, cfg = self.accelerator, self.config
        if self.eval_dataset is not None and not any(
            e["split"] == "eval" and e["step"] == self.step for e in self.history
        ):
            self.evaluate()
        last_dir = self.save_model("last")
        best_dir = self.out_dir / "best" if (cfg.keep == "best" and self.best_step is not None) else None
        chosen = best_dir if best_dir is not None else last_dir
        result = LoopResult(
            chosen_dir=chosen,
            best_step=self.best_step if self.best_step is not None else self.step,
            last_step=self.step,
            history=self.history,
            best_loss=self.best_loss,
            best_dir=best_dir,
            last_dir=last_dir,
        )
        if acc.is_main_process:
            atomic_write_json(self.out_dir / "done.json", result.to_json())
        if cfg.report_to:
            acc.end_training()
        acc.wait_for_everyone()
        return result


def _check_tracker(name: str | None) -> None:
    """Accelerate silently drops a tracker whose package is missing; a user who asked for one wants to know."""
    if not name:
        return
    from accelerate.tracking import get_available_trackers
    from accelerate.utils import LoggerType

    if name not in LoggerType.list():
        raise ConfigError(f"report_to must be one of {', '.join(LoggerType.list())}, not {name!r}")
    if name != "all" and name not in [str(t) for t in get_available_trackers()]:
        raise ConfigError(f"report_to={name} needs its package: pip install {name}")


class _Window:
    """Running sums between two log lines."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.steps, self.loss, self.tokens, self.metrics = 0, 0.0, 0, {}

    def add(self, loss: float, metrics: dict, tokens: int) -> None:
        self.steps += 1
        self.loss += loss
        self.tokens += tokens
        for key, value in metrics.items():
            self.metrics[key] = self.metrics.get(key, 0.0) + value


class _OnDevice:
    """Iterates a loader and moves each batch to the device."""

    def __init__(self, loader, device) -> None:
        self.loader, self.device = loader, device

    def __iter__(self):
        from accelerate.utils import send_to_device

        for batch in self.loader:
            yield send_to_device(batch, self.device)

    def __len__(self) -> int:
        return len(self.loader)


def _param_groups(model, weight_decay: float) -> list[dict]:
    """Weight decay on matrices only, never on norms and biases (nanoGPT's rule)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("the model has no trainable parameters")
    decay = [p for p in trainable if p.dim() >= 2]
    no_decay = [p for p in trainable if p.dim() < 2]
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _resolve_precision(name: str) -> str:
    if name != "auto":
        return name
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def _write_jsonl(path: Path, entries: list[dict]) -> None:
    from llm2rec.io import atomic_write_text

    atomic_write_text(path, "".join(json.dumps(e) + "\n" for e in entries))
