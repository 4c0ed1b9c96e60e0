"""Exact full-ranking evaluation: the rank of each target among all N items, and Recall/NDCG/MRR@K from it.

Ranking, over items 1..N (the padding id 0 is never ranked): a target with ``h`` items scoring strictly
higher and ``t`` other items scoring exactly the same could sit anywhere from rank ``h + 1`` to
``h + t + 1``. Ties are broken uniformly at random *in expectation*: every metric is its expected value
over those ``t + 1`` positions, computed exactly (no sampling). A scorer that gives every item the same
score (a collapsed encoder, an all-zero vector file) therefore scores chance level (Recall@K = K/N), never
1.0, and an integer-valued scorer (popularity) gets its fair value, not the optimistic end of its ties.
With continuous scores from a trained model ties essentially never happen and ``t = 0``. A target whose
own score is not finite (NaN, ±inf: a diverged model) is ranked last; NaN competitors count as lowest.

With one target per row, Recall@K equals HitRate@K; NDCG@K = 1/log2(rank+1) when rank ≤ K; MRR@K = 1/rank
when rank ≤ K; all are 0 otherwise; each is averaged over the tied positions, then over rows.

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

from llm2rec.seqrec.config import DEFAULT_KS, DEFAULT_MEMORY_BUDGET

METRIC_NAMES = ("recall", "ndcg", "mrr")
EXACT_FLOAT_COUNT = 1 << 23


def ranks_from_scores(scores: torch.Tensor, target_cols: torch.Tensor, inplace: bool = False) -> torch.Tensor:
    """``(higher, tied)`` per row b: how many items score strictly above ``scores[b, target_cols[b]]`` and
    how many others score exactly the same (items at ``-inf``, i.e. excluded ones, are neither).

    Returns a long tensor of shape (rows, 2). With ``inplace=True`` the scores are overwritten: no
    temporary the size of ``scores`` is made, and it is many times faster than bool comparisons summed
    as int64.
    """
    target_scores = scores.gather(1, target_cols.view(-1, 1))
    diff = scores if inplace else scores.clone()
    diff.nan_to_num_(nan=float("-inf"), posinf=float("inf"), neginf=float("-inf"))
    diff.sub_(target_scores).sign_()  # +1 above the target, 0 tied (the target too), -1 below
    signed = _exact_row_sums(diff)  # above - below
    unequal = _exact_row_sums(diff.abs_())  # above + below
    higher = (signed + unequal) // 2
    tied = diff.shape[1] - unequal - 1  # excluded items sit at -inf: below, never tied
    out = torch.stack([higher, tied], dim=1)
    broken = ~torch.isfinite(target_scores.view(-1))
    if broken.any():  # a diverged model: its target is ranked last, with no tie to share
        out[broken] = torch.tensor([diff.shape[1] - 1, 0], device=out.device)
    return out


def _exact_row_sums(values: torch.Tensor) -> torch.Tensor:
    """Row sums of a tensor of small integers (-1, 0, 1) as long: float32 sums are exact below 2**24, so
    longer rows are summed in pieces of that size."""
    total = torch.zeros(values.shape[0], dtype=torch.long, device=values.device)
    for start in range(0, values.shape[1], EXACT_FLOAT_COUNT):
        # In float32 (or wider): a bfloat16 or float16 sum is not exact beyond 256 or 2048 items.
        total += (
            values[:, start : start + EXACT_FLOAT_COUNT]
            .sum(dim=1, dtype=torch.float64 if values.dtype == torch.float64 else torch.float32)
            .long()
        )
    return total


def full_ranking_ranks(
    user_vecs: torch.Tensor,
    item_vecs: torch.Tensor,
    targets: torch.Tensor,
    exclude: tuple[np.ndarray, np.ndarray] | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
) -> torch.Tensor:
    """``(higher, tied)`` of ``targets`` (item ids 1..N) under scores ``user_vecs @ item_vecs.T``.

    ``item_vecs`` row j is item j+1 (no padding row). ``exclude`` is an optional CSR pair ``(indptr, items)``
    of item ids to remove from row r's ranking (``items[indptr[r]:indptr[r+1]]``), e.g. the user's history;
    the target itself is never removed. Returns a CPU long tensor of shape (rows, 2) (see
    :func:`ranks_from_scores`); :func:`metrics_from_ranks` turns it into metrics.
    """
    num_rows, num_items = user_vecs.shape[0], item_vecs.shape[0]
    if targets.shape[0] != num_rows:
        raise ValueError(f"{num_rows} user vectors but {targets.shape[0]} targets")
    if num_rows and (int(targets.min()) < 1 or int(targets.max()) > num_items):
        raise ValueError(f"targets must be item ids in 1..{num_items}")
    block = max(1, memory_budget // (4 * max(num_items, 1)))
    ranks = []
    # Scores and counts in float32 whatever the caller's autocast or dtypes: under bf16 autocast the
    # product and the row sums of the comparisons came out in bfloat16 (8-bit mantissa), which merged
    # distinct scores into ties and miscounted them (metrics below 0 or above 1 in a training stage's probe).
    wide = torch.promote_types(torch.promote_types(user_vecs.dtype, item_vecs.dtype), torch.float32)
    user_vecs, item_vecs = user_vecs.to(wide), item_vecs.to(wide)
    with torch.autocast(user_vecs.device.type, enabled=False):
        for start in range(0, num_rows, block):
            stop = min(start + block, num_rows)
            ranks.append(_block_ranks(user_vecs, item_vecs, targets, exclude, start, stop))
    return torch.cat(ranks) if ranks else torch.zeros((0, 2), dtype=torch.long)


def _block_ranks(user_vecs, item_vecs, targets, exclude, start: int, stop: int) -> torch.Tensor:
    scores = user_vecs[start:stop] @ item_vecs.T
    cols = targets[start:stop].to(scores.device) - 1
    if exclude is not None:
        _mask_excluded(scores, cols, exclude, start, stop)
    return ranks_from_scores(scores, cols, inplace=True).cpu()


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
    """Mean ``recall@K``, ``ndcg@K`` and ``mrr@K`` over rows, for each K (keys in lower case).

    ``ranks`` is either (rows, 2) ``(higher, tied)`` as :func:`full_ranking_ranks` returns (each metric is
    its expectation over the tied positions, see the module docstring), or (rows,) exact 1-based ranks.
    """
    ranks = _higher_tied(ranks)  # once, not per metric
    return {f"{name}@{k}": per_row_metric(ranks, name, k).mean().item() for k in ks for name in METRIC_NAMES}


def _higher_tied(ranks: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Ranks as float64 ``(higher, tied)`` rows, from that form or from exact 1-based ranks."""
    ranks = torch.as_tensor(ranks, dtype=torch.float64)
    if ranks.numel() == 0:
        raise ValueError("no rows to evaluate")
    if ranks.dim() == 1:  # exact ranks: no ties
        ranks = torch.stack([ranks - 1, torch.zeros_like(ranks)], dim=1)
    return ranks


def per_row_metric(ranks: torch.Tensor | np.ndarray, name: str, k: int) -> torch.Tensor:
    """Each row's ``recall``, ``ndcg`` or ``mrr`` at ``k`` (float64, shape (rows,)), ranks as in
    :func:`metrics_from_ranks`: what standard errors and paired comparisons of two rankings need."""
    ranks = _higher_tied(ranks)
    higher, tied = ranks[:, 0], ranks[:, 1]
    positions = torch.arange(1, k + 1, dtype=torch.float64)
    gain = {
        "recall": torch.ones(k, dtype=torch.float64),
        "ndcg": 1.0 / torch.log2(positions + 1.0),
        "mrr": 1.0 / positions,
    }[name]
    # The target's rank is uniform on higher+1 .. higher+tied+1: sum the gains of those positions that
    # fall within K (prefix sums), divided by the number of positions.
    first = higher.clamp(max=k).long()
    last = (higher + tied + 1).clamp(max=k).long()
    prefix = torch.cat([torch.zeros(1, dtype=torch.float64), gain.cumsum(0)])
    return (prefix[last] - prefix[first]) / (tied + 1)


def standard_error(values: torch.Tensor | np.ndarray) -> float:
    """Standard error of the mean of per-row values (sample std / sqrt(rows)); 0 for a single row. Of the
    difference of two rankings' :func:`per_row_metric` on the same rows, it is their paired error."""
    values = np.asarray(values, dtype=np.float64)
    return float(values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else 0.0


def metric_keys(ks: Sequence[int] = DEFAULT_KS) -> list[str]:
    return [f"{name}@{k}" for k in ks for name in METRIC_NAMES]
