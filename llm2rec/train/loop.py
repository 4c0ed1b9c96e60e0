"""The one training loop every LLM stage (CSFT, MNTP, contrastive) runs on, built on Accelerate.

What a stage supplies: a map-style dataset, a ``collate_fn``, and a ``loss_fn(model, batch, accelerator)``
returning ``(loss, metrics)``, and its settings (a :class:`~llm2rec.train.config.LoopConfig`, which every
stage config is). The loop does the rest: gradient accumulation to an effective batch, AdamW,
linear warm-up then linear decay, clipping, mixed precision, periodic evaluation and checkpoints, exact
resume, best/last model directories, a progress bar with tokens/s and MFU, and ``metrics.jsonl``.

The same code runs under ``python``, ``torchrun`` and ``accelerate launch``, with DDP or FSDP (chosen by
Accelerate's config; DeepSpeed is refused): the loop decides which examples each process sees
(:func:`llm2rec.train.batching.plan_epoch`), so N processes equal one with the same effective batch, and
resume is exact without sampler state. Every process runs the same number of forwards (eval batches are
padded, :mod:`llm2rec.train.evaluation`) and takes part in every save (:mod:`llm2rec.train.checkpoints`),
as a sharded model's collectives need.

Layout of ``out_dir``::

    metrics.jsonl             one JSON object per log / eval event
    checkpoints/step-000300/  Accelerate state + loop_state.json (see :mod:`llm2rec.train.checkpoints`)
    best/  last/              plain Hugging Face directories written by ``save_fn``
    done.json                 the LoopResult of a finished run (a re-run returns it at once)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from llm2rec.errors import ConfigError
from llm2rec.io import atomic_write_json, atomic_write_text
from llm2rec.outdir import write_marker
from llm2rec.train.batching import StepSampler, dataset_lengths
from llm2rec.train.checkpoints import Checkpoints, save_model
from llm2rec.train.config import LoopConfig
from llm2rec.train.evaluation import OnDevice, eval_loader, evaluate_model, mean_loss_eval
from llm2rec.train.outputs import DONE_FILE, METRICS_FILE, TRACKER_RUN, WORK_FILES, WORK_KIND
from llm2rec.train.setup import (
    cache_off_for_checkpointing,
    configure_parallelism,
    free_accelerator,
    make_accelerator,
    param_groups,
)
from llm2rec.train.throughput import Window, count_tokens, flops_per_token, peak_flops

log = logging.getLogger(__name__)

LossFn = Callable[[Any, dict, Any], "tuple[torch.Tensor, dict[str, float]]"]
EvalFn = Callable[[Any, Any, Any], dict]
SaveFn = Callable[[Any, Any, Path], Any]


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
    the bare module (not the DDP wrapper); micro-batch j of the eval set goes to process j % world, and a
    process left one short gets a padding batch (labels all -100, no rows: ``loader.weighted()``).
    ``save_fn(model, tokenizer, dir)`` writes a model directory; the default a plain HF one (LoRA merged);
    under FSDP it is called as ``save_fn(model, tokenizer, dir, state_dict=full_weights)``.
    With ``resume``, the run continues from the newest checkpoint in ``out_dir`` exactly as if never stopped.
    """
    from llm2rec.llm.backbone import save_pretrained_atomic

    out_dir = Path(out_dir)
    config = config.for_examples(len(train_dataset))  # max_epochs → max_steps, now that the size is known
    save_fn = save_fn or save_pretrained_atomic
    eval_fn = eval_fn or mean_loss_eval(loss_fn)
    done = out_dir / DONE_FILE
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
    try:
        return run.train()
    finally:
        run.release()


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
        from accelerate.utils import set_seed
        from transformers import get_linear_schedule_with_warmup

        self.config, self.out_dir = config, out_dir
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.collate_fn, self.loss_fn, self.eval_fn, self.save_fn = collate_fn, loss_fn, eval_fn, save_fn
        self.tokenizer = tokenizer
        self.accelerator = acc = make_accelerator(config, out_dir)
        self.accum = config.accumulation_steps(acc.num_processes)
        self.sharded = configure_parallelism(acc, model, self.accum)  # refuses DeepSpeed; FSDP or not
        self.use_cache = cache_off_for_checkpointing(acc, model)
        if len(train_dataset) < config.batch_size:
            raise ConfigError(
                f"the training set has {len(train_dataset)} examples, fewer than one effective batch "
                f"({config.batch_size})"
            )
        set_seed(config.seed)
        optimizer = torch.optim.AdamW(
            param_groups(model, config.weight_decay),
            lr=config.lr,
            betas=config.adam_betas,
            eps=config.adam_eps,
        )
        self.model, self.optimizer = acc.prepare(model, optimizer)
        # Not prepared: Accelerate would step a prepared scheduler once per process per call.
        self.scheduler = get_linear_schedule_with_warmup(
            self.optimizer, config.warmup_steps, config.schedule_horizon(len(train_dataset))
        )
        acc.register_for_checkpointing(self.scheduler)
        self.checkpoints = Checkpoints(acc, out_dir, config.keep_checkpoints)
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
            write_marker(out_dir, WORK_KIND, files=WORK_FILES)  # ours: a later run may resume or remove it

    # -- checkpoints --------------------------------------------------------------------------------------
    def clear(self) -> None:
        """Forget a previous run in out_dir (resume=False)."""
        if self.accelerator.is_main_process:
            self.checkpoints.remove_all()
            for name in (METRICS_FILE, DONE_FILE):
                (self.out_dir / name).unlink(missing_ok=True)
        self.accelerator.wait_for_everyone()

    def restore_latest(self) -> None:
        state = self.checkpoints.load_latest(self.config)
        if state is None:
            self.clear()
            return
        self.step, self.history = state["step"], state["history"]
        self.best_loss, self.best_step = state["best_loss"], state["best_step"]
        if self.accelerator.is_main_process:
            (self.out_dir / DONE_FILE).unlink(missing_ok=True)
            lines = "".join(json.dumps(e) + "\n" for e in self.history)
            atomic_write_text(self.out_dir / METRICS_FILE, lines)
        log.info("resumed from %s at step %d", state["path"], self.step)

    def save_checkpoint(self) -> None:
        state = {
            "step": self.step,
            "epoch": self.step // self.steps_per_epoch,
            "batch_in_epoch": self.step % self.steps_per_epoch,
            "best_loss": self.best_loss,
            "best_step": self.best_step,
            "history": self.history,
            "config": asdict(self.config),
        }
        self.checkpoints.save(self.step, state)

    def save_model(self, name: str) -> Path:
        """Every process calls this (a sharded model's weights are gathered); the main one writes."""
        acc, target, cache = self.accelerator, self.out_dir / name, self.use_cache
        return save_model(
            acc, self.model, target, self.save_fn, self.tokenizer, sharded=self.sharded, use_cache=cache
        )

    # -- evaluation and logging -----------------------------------------------------------------------------
    def evaluate(self) -> None:
        if self.eval_dataset is None:
            return
        acc = self.accelerator
        loader = eval_loader(self.eval_dataset, self.collate_fn, self.config.micro_batch, acc)
        metrics = evaluate_model(self.model, loader, self.eval_fn, acc)
        self.record({"step": self.step, "split": "eval", **metrics})
        # "Best": the eval_fn's 'selection' if it gives one (e.g. minus a valid recall), else its loss.
        score = float(metrics["selection"] if "selection" in metrics else metrics["loss"])
        # The evaluation before training is a reference point, not a candidate: the stage hands on a
        # trained model (as the paper's Trainer, whose best is chosen among saved checkpoints).
        if self.step > 0 and (self.best_loss is None or score < self.best_loss):
            self.best_loss, self.best_step = score, self.step
            if self.config.keep == "best":
                self.save_model("best")

    def record(self, entry: dict) -> None:
        entry = {k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in entry.items()}
        self.history.append(entry)
        if self.accelerator.is_main_process:
            with open(self.out_dir / METRICS_FILE, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(entry) + "\n")
        if self.config.report_to:
            numbers = {f"{entry['split']}/{k}": v for k, v in entry.items() if isinstance(v, int | float)}
            self.accelerator.log(numbers, step=entry["step"])

    # -- training -------------------------------------------------------------------------------------------
    @property
    def steps_per_epoch(self) -> int:
        return len(self.train_dataset) // self.config.batch_size

    def train(self) -> LoopResult:
        from tqdm.auto import tqdm

        acc, cfg = self.accelerator, self.config
        if self.step == 0 and cfg.eval_at_start:
            self.evaluate()
        sampler = StepSampler(
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
        micro_batches = iter(OnDevice(loader, acc.device))
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            disable=not (cfg.progress and acc.is_main_process),
            desc="train",
            dynamic_ncols=True,
        )
        window = Window()
        self.model.train()
        while self.step < cfg.max_steps:
            loss, metrics, tokens, grad_norm = self.train_step(micro_batches)
            self.step += 1
            bar.update(1)
            window.add(loss, metrics, tokens)
            if self.step % cfg.log_every == 0 or self.step == cfg.max_steps:
                entry = self.log_entry(window, grad_norm)
                shown = {"loss": f"{entry['loss']:.4f}", "tok_s": f"{entry['tokens_per_s']:.0f}"}
                if entry["mfu"] is not None:  # only against a known peak (GPU tables, or peak_tflops)
                    shown["mfu"] = f"{entry['mfu']:.1%}"
                bar.set_postfix(**shown)
                window = Window()
            if cfg.eval_every and self.step % cfg.eval_every == 0:
                self.evaluate()
            if cfg.save_every and self.step % cfg.save_every == 0 and self.step < cfg.max_steps:
                self.save_checkpoint()
        bar.close()
        return self.finish()

    def train_step(self, micro_batches) -> tuple[float, dict, int, float | None]:
        acc, cfg = self.accelerator, self.config
        total_loss, metric_sums, tokens = 0.0, {}, 0
        # Accelerate counts micro-batches: this step's last one syncs, whatever number of processes came before.
        acc.step = 0
        for _ in range(self.accum):
            batch = next(micro_batches)
            tokens += count_tokens(batch)
            # Gradients are all-reduced (reduce-scattered under FSDP) only on the step's last micro-batch;
            # backward divides the loss by the accumulation steps.
            with acc.accumulate(self.model):
                with acc.autocast():
                    loss, metrics = self.loss_fn(self.model, batch, acc)
                acc.backward(loss)
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

    def log_entry(self, window: Window, grad_norm: float | None) -> dict:
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

    def release(self) -> None:
        self.model = self.optimizer = self.scheduler = None
        free_accelerator(self.accelerator)

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
            atomic_write_json(self.out_dir / DONE_FILE, result.to_json())
        if cfg.report_to:
            acc.end_training()
        acc.wait_for_everyone()
        return result
