"""Baselines for scale: most-popular (training-part counts) and random scores.

Both are written as (user vectors, item vectors) pairs so that they go through exactly the same full-ranking
code as the trained models, history exclusion included.
"""

from __future__ import annotations

import numpy as np
import torch

BASELINES = ("pop", "random")


def popularity_vectors(item_counts: np.ndarray, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Every user scores item i by its training-part count. Integer scores tie often, and ties favour the
    target (see :mod:`llm2rec.seqrec.metrics`), so this is popularity's optimistic value."""
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
