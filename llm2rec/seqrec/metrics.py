"""Exact full-ranking evaluation: the rank of each target among all N items, and Recall/NDCG/MRR@K from it.

Ranking rule: ``rank = 1 + number of items scoring strictly higher than the target``, over items 1..N (the
padding id 0 is never ranked). Ties therefore favour the target: an item with exactly the target's score
does not push it down. This is the optimistic end of the tie range; with continuous scores from a trained
model ties essentially never happen, but a constant or integer-valued scorer (popularity) benefits from
it, so compare such baselines with that in mind.

With one target per row, Recall@K equals HitRate@K; NDCG@K = 1/log2(rank+1) when rank ≤ K; MRR@K = 1/rank
when rank ≤ K; all are 0 otherwise and are averaged over rows.

Memory: scores are computed for a block of users against the whole catalogue at once, so the target's score
and every competitor's come out of the same matrix product (bitwise comparable; a separately computed dot
product could differ by an ulp and break exact ties). The user block is sized so that the score block fits
``memory_budget`` bytes (default 1 GiB), and the comparison with the target is done in place in that block,
so evaluation needs about ``memory_budget`` of extra memory whatever the number of users and items (as long
as one user's scores fit).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

DEFAULT_KS = (5, 10, 20)
METRIC_NAMES = ("recall", "ndcg", "mrr")
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes for one block of float32 scores
EXACT_FLOAT_COUNT = 1 << 23


def ranks_from_scores(scores: torch.Tensor, target_cols: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """Rank (1-based) of ``scores[b, target_cols[b]]`` within row b; ties favour the target.

    With ``inplace=True`` the scores are overwritten (with 1.0 where an item beats the target): no
    temporary the size of ``scores`` is made, and it is many times faster than a bool comparison summed
    as int64.
    """
    target_scores = scores.gather(1, target_cols.view(-1, 1))
    beats = scores if inplace else scores.clone()
    beats.gt_(target_scores)
    higher = torch.zeros(beats.shape[0], dtype=torch.long, device=beats.device)
    # float32 sums of 0/1 are exact below 2**24; longer rows are summed in pieces of that size.
    for start in range(0, beats.shape[1], EXACT_FLOAT_COUNT):
        higher += beats[:, start : start + EXACT_FLOAT_COUNT].sum(dim=1).long()
    return higher + 1


def full_ranking_ranks(
    user_vecs: torch.Tensor,
    item_vecs: torch.Tensor,
    targets: torch.Tensor,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> torch.Tensor:
    """Ranks of ``targets`` (item ids 1..N) under scores ``user_vecs @ item_vecs.T``.

    ``item_vecs`` row j is item j+1 (no padding row). ``exclude`` is an optional CSR pair ``(indptr, items)``
    of item ids to remove from row r's ranking (``items[indptr[r]:indptr[r+1]]``), e.g. the user's history;
    the target itself is never removed. Returns a CPU long tensor of shape (rows,).
    """
    num_rows, num_items = user_vecs.shape[0], item_vecs.shape[0]
    if targets.shape[0] != num_rows:
        raise ValueError(f"{num_rows} user vectors but {targets.shape[0]} targets")
    if num_rows and (int(targets.min()) < 1 or int(targets.max()) > num_items):
        raise ValueError(f"targets must be item ids in 1..{num_items}")
    block = max(1, memory_budget // (4 * max(num_items, 1)))
    ranks = []
    for start in range(0, num_rows, block):
        stop = min(start + block, num_rows)
        scores = user_vecs[start:stop] @ item_vecs.T
        cols = targets[start:stop].to(scores.device) - 1
        if exclude is not None:
            _mask_excluded(scores, cols, exclude, start, stop)
        ranks.append(ranks_from_scores(scores, cols, inplace=True).cpu())
        del scores
    return torch.cat(ranks) if ranks else torch.zeros(0, dtype=torch.long)


def _mask_excluded(
    scores: torch.Tensor, cols: torch.Tensor, exclude: tuple[np.ndarray, np.ndarray], start: int, stop: int
) -> None:
    indptr, items = exclude
    lo, hi = int(indptr[start]), int(indptr[stop])
    if hi == lo:
        return
    counts = torch.from_numpy(np.diff(indptr[start : stop + 1]).astype(np.int64))
    rows = torch.repeat_interleave(torch.arange(stop - start), counts).to(scores.device)
    excluded_cols = torch.from_numpy(items[lo:hi].astype(np.int64)).to(scores.device) - 1
    keep_target = excluded_cols != cols[rows]  # a repeated purchase of the target must stay rankable
    scores[rows[keep_target], excluded_cols[keep_target]] = float("-inf")


def metrics_from_ranks(ranks: torch.Tensor | np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean ``recall@K``, ``ndcg@K`` and ``mrr@K`` over rows, for each K (keys in lower case)."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    out: dict[str, float] = {}
    if ranks.numel() == 0:
        raise ValueError("no rows to evaluate")
    for k in ks:
        hit = ranks <= k
        out[f"recall@{k}"] = hit.double().mean().item()
        out[f"ndcg@{k}"] = torch.where(hit, 1.0 / torch.log2(ranks + 1.0), 0.0).mean().item()
        out[f"mrr@{k}"] = torch.where(hit, 1.0 / ranks, 0.0).mean().item()
    return out


def metric_keys(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    return [f"{name}@{k}" for k in ks for name in METRIC_NAMES]
