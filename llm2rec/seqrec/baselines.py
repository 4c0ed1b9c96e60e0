"""Training-free baselines: most-popular (training-part counts), random scores, item-vector kNN, and
"repeat the last item" (its ranks are computed directly: :func:`llm2rec.seqrec.groups.repeat_last_ranks`).

All are written as (user vectors, item vectors) pairs so that they go through exactly the same full-ranking
code as the trained models, history exclusion included.

``knn`` scores every item by the centred cosine similarity of its vector to the last history item's: a probe of
how much next-item signal the item vectors carry with no recommender trained on top. An item is always
its own nearest neighbour, so knn always removes the user's seen items from the ranking (the target
stays rankable, as everywhere).
"""

from __future__ import annotations

import numpy as np
import torch

from llm2rec.seqrec.config import BASELINES, DETERMINISTIC, NEEDS_VECTORS

__all__ = ["BASELINES", "DETERMINISTIC", "NEEDS_VECTORS", "centred_unit_vectors", "last_item_knn_vectors",
           "popularity_vectors", "random_vectors"]  # fmt: skip


def popularity_vectors(item_counts: np.ndarray, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every user scores item i by its training-part count. Integer scores tie often; the metrics break ties
    uniformly in expectation (see :mod:`llm2rec.seqrec.metrics`), so this is popularity's fair value."""
    items = torch.as_tensor(item_counts[1:], dtype=torch.float32).view(-1, 1)
    return torch.ones(num_rows, 1), items


def random_vectors(
    num_rows: int, num_items: int, seed: int, dim: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-user random scores (Gaussian factors: continuous, so no ties); expected Recall@K ≈ K/N."""
    generator = torch.Generator().manual_seed(seed)
    users = torch.randn(num_rows, dim, generator=generator)
    items = torch.randn(num_items, dim, generator=generator)
    return users, items


def centred_unit_vectors(vectors) -> torch.Tensor:
    """(N+1, d) item vectors less the mean item vector (row 0, the padding item, not counted), L2-normalised."""
    table = torch.as_tensor(vectors, dtype=torch.float32)
    centre = table[1:].mean(dim=0, keepdim=True)
    return torch.nn.functional.normalize(table - centre, dim=1)


def last_item_knn_vectors(vectors: np.ndarray, histories: torch.Tensor, lengths: torch.Tensor):
    """Users = the centred, L2-normalised vector of their last history item; items = all such vectors.

    Centred (the mean item vector subtracted first): raw LLM vectors share one large common direction
    (mean cosine between two items 0.86 on the demo), which an uncentred cosine mostly measures."""
    unit = centred_unit_vectors(vectors)
    last = histories[torch.arange(histories.shape[0]), (lengths - 1).clamp(min=0)]
    return unit[last], unit[1:]
