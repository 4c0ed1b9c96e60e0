"""Training with full-softmax cross-entropy, periodic validation, early stopping and best-state restore."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from llm2rec.seqrec.data import Examples, SeqRecData
from llm2rec.seqrec.metrics import DEFAULT_KS, DEFAULT_MEMORY_BUDGET, full_ranking_ranks, metrics_from_ranks
from llm2rec.seqrec.models import SequentialRecommender

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    epochs: int = 500
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    eval_every: int = 1
    patience: int = 10  # epochs since the best validation score before stopping
    valid_metric: str = "recall@20"
    ks: tuple[int, ...] = DEFAULT_KS
    exclude_history: bool = False
    eval_batch_size: int = 2048
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    progress: bool = True


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
    states = torch.cat(
        [
            model.user_states(
                examples.histories[i : i + batch_size].to(device),
                examples.lengths[i : i + batch_size].to(device),
                table,
            )
            for i in range(0, len(examples), batch_size)
        ]
    )
    exclude = examples.seen if exclude_history else None
    return full_ranking_ranks(states, table[1:], examples.targets, exclude, memory_budget)


def fit(model: SequentialRecommender, data: SeqRecData, cfg: TrainConfig, seed: int) -> TrainResult:
    """Train ``model`` on ``data.train``; validate every ``eval_every`` epochs on ``cfg.valid_metric``; stop
    when it has not improved for ``patience`` epochs; leave the best validated state loaded."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    train = data.train
    histories, lengths, targets = (t.to(device) for t in (train.histories, train.lengths, train.targets))
    best_score, best_epoch, best_valid, best_state = float("-inf"), 0, {}, None
    curve: list[dict] = []
    started = time.perf_counter()
    bar = tqdm(range(1, cfg.epochs + 1), desc="epochs", unit="ep", disable=not cfg.progress, leave=False)
    for epoch in bar:
        tick = time.perf_counter()
        model.train()
        order = torch.randperm(len(train), generator=generator).to(device)
        total, batches = 0.0, 0
        for start in range(0, len(train), cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            logits = model(histories[idx], lengths[idx])
            loss = F.cross_entropy(logits, targets[idx] - 1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, batches = total + loss.item(), batches + 1
        point = {"epoch": epoch, "loss": total / batches, "seconds": time.perf_counter() - tick}
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            valid = evaluate(
                model, data.valid, cfg.ks, cfg.exclude_history, cfg.eval_batch_size, cfg.memory_budget
            )
            point.update({f"valid_{k}": v for k, v in valid.items()})
            if valid[cfg.valid_metric] > best_score:
                best_score, best_epoch, best_valid = valid[cfg.valid_metric], epoch, valid
                best_state = copy.deepcopy(model.state_dict())
            bar.set_postfix(
                loss=f"{point['loss']:.3f}", valid=f"{valid[cfg.valid_metric]:.4f}", best=best_epoch
            )
            log.debug(
                "epoch %d: loss %.4f, valid %s %.4f (best %.4f at epoch %d)",
                epoch,
                point["loss"],
                cfg.valid_metric,
                valid[cfg.valid_metric],
                best_score,
                best_epoch,
            )
        curve.append(point)
        if best_state is not None and epoch - best_epoch >= cfg.patience:
            log.info(
                "early stop at epoch %d; best %s %.4f at epoch %d",
                epoch,
                cfg.valid_metric,
                best_score,
                best_epoch,
            )
            break
    bar.close()
    model.load_state_dict(best_state)
    return TrainResult(best_epoch, best_valid, len(curve), time.perf_counter() - started, curve)
