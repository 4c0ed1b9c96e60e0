"""Training with full-softmax cross-entropy, periodic validation, early stopping and best-state restore."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from llm2rec.seqrec.config import DEFAULT_KS, DEFAULT_MEMORY_BUDGET, TrainConfig
from llm2rec.seqrec.data import Examples, SeqRecData, TrainRows
from llm2rec.seqrec.metrics import full_ranking_ranks, metrics_from_ranks
from llm2rec.seqrec.models import SequentialRecommender
from llm2rec.seqrec.optim import AdamW
from llm2rec.seqrec.progress import EvalLog

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    best_epoch: int
    best_valid: dict[str, float]
    epochs_run: int
    train_seconds: float
    curve: list[dict] = field(default_factory=list)  # one entry per epoch: epoch, loss, seconds, [valid_*]


@torch.no_grad()
def evaluate(
    model: SequentialRecommender,
    examples: Examples,
    ks=DEFAULT_KS,
    exclude_history: bool = False,
    batch_size: int = 2048,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> dict[str, float]:
    """Exact full-ranking metrics of ``model`` on ``examples`` (the model is left in eval mode)."""
    ranks = rank_targets(model, examples, exclude_history, batch_size, memory_budget)
    return metrics_from_ranks(ranks, ks)


@torch.no_grad()
def rank_targets(
    model: SequentialRecommender,
    examples: Examples,
    exclude_history: bool = False,
    batch_size: int = 2048,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> torch.Tensor:
    model.eval()
    device = next(model.parameters()).device
    table = model.item_encoder.table()
    states = torch.empty((len(examples), table.shape[1]), dtype=table.dtype, device=device)
    # Rows grouped by history length, each group cut to that length: no position is computed for padding
    # (the states are the same; they are put back in row order).
    for width in torch.unique(examples.lengths).tolist():
        same = torch.nonzero(examples.lengths == width).flatten()
        for rows in torch.split(same, batch_size):
            histories = examples.histories[rows, :width].to(device)
            states[rows.to(device)] = model.user_states(histories, examples.lengths[rows].to(device), table)
    exclude = examples.seen if exclude_history else None
    return full_ranking_ranks(states, table[1:], examples.targets, exclude, memory_budget)


def epoch_batches(rows: TrainRows, batch_size: int, generator: torch.Generator, group: int = 8):
    """One epoch of batches: ``(row indices, width)`` pairs holding about ``batch_size`` targets each.

    Rows are shuffled, then sorted by width within chunks of ``group`` batches, so a batch is trimmed to
    rows of similar widths (less padding computed) while the epoch stays random; the batch order is then
    shuffled too. A row goes to the batch in which its first target falls.
    """
    order = torch.randperm(len(rows), generator=generator)
    per_row = max(rows.num_targets / max(len(rows), 1), 1.0)
    chunk = max(1, int(group * batch_size / per_row))
    widths = rows.widths[order]
    for start in range(0, len(order), chunk):
        piece = slice(start, start + chunk)
        by_width = torch.argsort(widths[piece], descending=True, stable=True)
        order[piece], widths[piece] = order[piece][by_width], widths[piece][by_width]
    first_target = torch.cumsum(rows.n_targets[order], 0) - rows.n_targets[order]
    batch_of = first_target // batch_size
    counts = torch.unique_consecutive(batch_of, return_counts=True)[1].tolist()
    batches = list(zip(torch.split(order, counts), torch.split(widths, counts), strict=True))
    for k in torch.randperm(len(batches), generator=generator).tolist():
        idx, w = batches[k]
        yield idx, int(w.max())


def fit(model: SequentialRecommender, data: SeqRecData, cfg: TrainConfig, seed: int) -> TrainResult:
    """Train ``model`` on ``data.train_rows`` (the targets of ``data.train`` in whole-sequence rows); validate every ``eval_every`` epochs on ``cfg.valid_metric``; stop
    when it has not improved for ``patience`` epochs; leave the best validated state loaded.

    Without a progress bar (``cfg.progress`` off, as in ``llm2rec run``) each evaluation may log a line
    (epoch, valid metric, best so far, ETA; rate-limited: :mod:`llm2rec.seqrec.progress`)."""
    device = next(model.parameters()).device
    optimizer = AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    rows = data.train_rows
    inputs, targets = rows.inputs.to(device), rows.targets.to(device)
    best, curve = _Best(), []
    started = time.perf_counter()
    lines = EvalLog(cfg, seed, enabled=not cfg.progress)
    bar = tqdm(range(1, cfg.epochs + 1), desc="epochs", unit="ep", disable=not cfg.progress, leave=False)
    for epoch in bar:
        tick = time.perf_counter()
        model.train()
        total, batches = 0.0, 0
        for idx, width in epoch_batches(rows, cfg.batch_size, generator, cfg.length_group):
            idx = idx.to(device)
            loss = model.training_loss(inputs[idx, :width], targets[idx, :width], cfg.memory_budget)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        point = {"epoch": epoch, "loss": total / batches, "seconds": time.perf_counter() - tick}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            _validate(model, data, cfg, point, best)
            bar.set_postfix(loss=f"{point['loss']:.3f}", valid=f"{best.last:.4f}", best=best.epoch)
            last = epoch == cfg.epochs or epoch - best.epoch >= cfg.patience
            lines.evaluated(epoch, point["loss"], best.last, best.score, best.epoch, last=last)
        curve.append(point)
        if best.state is not None and epoch - best.epoch >= cfg.patience:
            log.info(
                "early stop at epoch %d; best %s %.4f at epoch %d",
                epoch,
                cfg.valid_metric,
                best.score,
                best.epoch,
            )
            break
    bar.close()
    _warn_if_cut_short(len(curve), best.epoch, cfg)
    model.load_state_dict(best.state)
    return TrainResult(best.epoch, best.valid, len(curve), time.perf_counter() - started, curve)


@dataclass
class _Best:
    """The best validated state so far, and the latest valid score."""

    score: float = float("-inf")
    epoch: int = 0
    valid: dict = field(default_factory=dict)
    state: dict | None = None
    last: float = float("nan")


def _validate(
    model: SequentialRecommender, data: SeqRecData, cfg: TrainConfig, point: dict, best: _Best
) -> None:
    """Score ``data.valid``; record it in ``point`` (the epoch's curve entry) and keep a new best state."""
    valid = evaluate(model, data.valid, cfg.ks, cfg.exclude_history, cfg.eval_batch_size, cfg.memory_budget)
    point.update({f"valid_{k}": v for k, v in valid.items()})
    best.last = valid[cfg.valid_metric]
    if best.last > best.score:
        best.score, best.epoch, best.valid = best.last, point["epoch"], valid
        best.state = copy.deepcopy(model.state_dict())


def _warn_if_cut_short(epochs_run: int, best_epoch: int, cfg: TrainConfig) -> None:
    """Say so when the epoch cap, not patience, ended a run that was still improving: such a row is scored
    before it converged (the demo's 15-epoch cap once ranked raw LLM vectors 0.08 too low)."""
    if epochs_run == cfg.epochs and cfg.epochs - best_epoch < cfg.patience:
        log.warning(
            "stopped at the epoch cap (%d) with the best %s at epoch %d, fewer than patience (%d) epochs "
            "before it: the model may not have converged; raise epochs",
            cfg.epochs,
            cfg.valid_metric,
            best_epoch,
            cfg.patience,
        )
