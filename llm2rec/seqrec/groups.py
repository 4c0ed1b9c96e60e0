"""Metrics per group of test targets: where item embeddings pay off, not only on average.

* **Popularity** (``head`` / ``torso`` / ``tail``), by the target's count in the training parts. Items are
  sorted by that count, most popular first, and cut into three groups that each hold about a third of all
  training interactions: ``head`` is the few items that make up the first third, ``tail`` the many that make
  up the last third, together with every item never seen in training. An item's group is decided by
  where the cumulative share stands before it (``< 1/3`` head, ``< 2/3`` torso), so items with equal
  counts can fall on both sides of a threshold only through the stable sort, by item id.
* **Repeat** or **new**: whether the target is already among the user's seen items (the training part; for
  a test row also the valid item), i.e. a repeat purchase.
* **Warm** or **cold** (only when the dataset marks cold items, ``prepare --cold-items``): whether the target
  was held out of every training input.

Each group's metrics come from the same ranks as the overall ones (:mod:`llm2rec.seqrec.metrics`), so the
overall value is the row-weighted mean of a partition's groups.
"""

from __future__ import annotations

import numpy as np
import torch

from llm2rec.seqrec.metrics import metrics_from_ranks

POPULARITY_GROUPS = ("head", "torso", "tail")
HISTORY_GROUPS = ("repeat", "new")
COLD_GROUPS = ("warm", "cold")


def popularity_group_of_items(item_counts: np.ndarray) -> np.ndarray:
    """``groups[i]`` (0 head, 1 torso, 2 tail) for item ids 0..N from training counts (row 0: padding)."""
    counts = np.asarray(item_counts[1:], dtype=np.float64)
    order = np.argsort(-counts, kind="stable")
    total = counts.sum()
    before = (np.cumsum(counts[order]) - counts[order]) / total if total else np.ones(len(counts))
    ranked = np.where(before < 1 / 3, 0, np.where(before < 2 / 3, 1, 2))
    ranked[counts[order] == 0] = 2  # never trained on: the tail, whatever the shares
    groups = np.empty(len(counts), dtype=np.int64)
    groups[order] = ranked
    return np.concatenate([[2], groups])


def repeat_targets(examples) -> np.ndarray:
    """Whether each row's target is among its seen items (``examples.seen``, CSR)."""
    targets = examples.targets.numpy()
    if examples.seen is None:
        return np.zeros(len(targets), dtype=bool)
    indptr, items = examples.seen
    row_of = np.repeat(np.arange(len(targets)), np.diff(indptr))
    hit = np.zeros(len(targets), dtype=bool)
    hit[row_of[items == targets[row_of]]] = True
    return hit


def target_groups(item_counts: np.ndarray, examples, cold_items: np.ndarray | None = None) -> dict:
    """``{group name: bool mask over rows}`` for every group this data has."""
    targets = examples.targets.numpy()
    popularity = popularity_group_of_items(item_counts)[targets]
    groups = {name: popularity == k for k, name in enumerate(POPULARITY_GROUPS)}
    repeat = repeat_targets(examples)
    groups.update(repeat=repeat, new=~repeat)
    if cold_items is not None and len(cold_items):
        cold = np.isin(targets, cold_items)
        groups.update(warm=~cold, cold=cold)
    return groups


def group_metrics(ranks: torch.Tensor, groups: dict, ks) -> dict:
    """``{group: {"rows": n, metric: value, ...}}``; a group with no row has only ``rows: 0``."""
    out = {}
    for name, mask in groups.items():
        rows = int(mask.sum())
        out[name] = {"rows": rows, **(metrics_from_ranks(ranks[torch.from_numpy(mask)], ks) if rows else {})}
    return out


def repeat_last_ranks(examples, num_items: int, exclude_history: bool) -> torch.Tensor:
    """``(higher, tied)`` of the "repeat the last item" baseline: the last history item scores 1, every
    other item 0. A target that is the last item ranks first; any other target is tied with every item
    but the last one (and the seen items, when history is excluded, which the target is not)."""
    last = examples.histories[torch.arange(len(examples)), (examples.lengths - 1).clamp(min=0)].numpy()
    targets = examples.targets.numpy()
    hit = last == targets
    if exclude_history and examples.seen is not None:
        indptr, items = examples.seen
        row_of = np.repeat(np.arange(len(targets)), np.diff(indptr))
        others = items != targets[row_of]  # the target stays rankable
        pairs = np.unique(np.stack([row_of[others], items[others]]), axis=1)
        removed = np.bincount(pairs[0], minlength=len(targets))
        higher = np.zeros(len(targets), dtype=np.int64)  # the last item is seen, so removed
    else:
        removed = np.zeros(len(targets), dtype=np.int64)
        higher = (~hit).astype(np.int64)
    tied = np.where(hit, 0, num_items - 1 - higher - removed)
    return torch.from_numpy(np.stack([np.where(hit, 0, higher), tied], axis=1))


def aggregate_groups(runs: list[dict], std: str) -> dict:
    """``{"group_metrics": {group: {"rows": n, metric: {mean, std, per_seed}}}}`` over seeds, or ``{}``
    when a reused seed predates group metrics (its saved model can be re-scored: llm2rec.seqrec.saved)."""
    from llm2rec.seqrec.results import aggregate

    if not runs or any("test_groups" not in r for r in runs):
        return {}
    out = {}
    for name, first in runs[0]["test_groups"].items():
        per_seed = [{k: v for k, v in r["test_groups"][name].items() if k != "rows"} for r in runs]
        out[name] = {"rows": first["rows"], **(aggregate(per_seed, std) if first["rows"] else {})}
    return {"group_metrics": out}
