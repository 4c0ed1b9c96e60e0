"""Item representations for the downstream recommenders (item-vector files: :mod:`llm2rec.data.vectors`).

Modes (``item_repr``):

``id``
    A trainable embedding table (N+1, hidden), row 0 = padding.
``text``
    Frozen vectors from an ``.npy`` file (N+1, d), row i = item i, behind an adapter: ``Linear(d → hidden)``
    (the paper's; xavier-normal weight, zero bias as in the official code) or a two-layer MLP.
    ``finetune_vectors=True`` makes the vectors themselves trainable.
``text+id``
    The adapted text vector plus a trainable ID embedding.

The same table serves as input embedding and output layer (logits = sequence state · table[1:]ᵀ).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from llm2rec.errors import ConfigError

ITEM_REPRS = ("id", "text", "text+id")
ADAPTERS = ("linear", "mlp")
VECTOR_NORMS = ("none", "scale", "center", "l2", "center-l2", "standardize")


def normalise_vectors(
    vectors: np.ndarray, how: str = "none", reference: np.ndarray | None = None
) -> np.ndarray:
    """Optional preprocessing of raw vectors (row 0 stays as given): one global scale (mean norm 1),
    centring, L2 normalisation, or per-dimension standardisation. The statistics (mean norm, mean vector,
    per-dimension std) come from ``reference`` when given (new items normalised as the catalogue was),
    else from ``vectors``.

    Raw LLM mean-pooled vectors are large (norm ≈ 44 for SmolLM2) and nearly parallel; ``scale`` only fixes
    the size, which the adapter's initialisation expects, and keeps the geometry; centring removes the
    shared direction. ``standardize`` also evens out the dimensions (a few SmolLM2 dimensions have 5-10
    times the median spread; under Adam a dimension's share of each adapter step grows with its size):
    every dimension centred to mean 0 and scaled to std ``1/sqrt(d)``, so the mean norm is about 1 as with
    ``scale``. A dimension that is constant over the catalogue becomes 0.
    """
    if how not in VECTOR_NORMS:
        raise ConfigError(f"vector normalisation must be one of {', '.join(VECTOR_NORMS)}, not {how!r}")
    out = vectors.astype(np.float32, copy=True)
    items = out[1:]
    stats = items if reference is None else np.asarray(reference, dtype=np.float32)[1:]
    if how == "scale":  # one global factor: mean item-vector norm 1, every angle and ratio kept
        items /= max(float(np.linalg.norm(stats, axis=1).mean()), 1e-12)
    if how in ("center", "center-l2"):
        items -= stats.mean(axis=0, keepdims=True)
    if how in ("l2", "center-l2"):
        items /= np.maximum(np.linalg.norm(items, axis=1, keepdims=True), 1e-12)
    if how == "standardize":
        std = stats.std(axis=0, keepdims=True)
        items -= stats.mean(axis=0, keepdims=True)
        items *= np.where(std > 1e-12, 1.0 / np.maximum(std, 1e-12), 0.0) / np.sqrt(items.shape[1])
    return out


def make_adapter(in_dim: int, hidden: int, kind: str = "linear") -> nn.Module:
    if kind == "linear":
        adapter = nn.Linear(in_dim, hidden)
    elif kind == "mlp":
        adapter = nn.Sequential(nn.Linear(in_dim, 2 * hidden), nn.GELU(), nn.Linear(2 * hidden, hidden))
    else:
        raise ConfigError(f"adapter must be one of {', '.join(ADAPTERS)}, not {kind!r}")
    for module in adapter.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_normal_(module.weight)
            nn.init.zeros_(module.bias)
    return adapter


class ItemEncoder(nn.Module):
    """Produces the (N+1, hidden) item table; see the module docstring for the modes."""

    def __init__(
        self,
        num_items: int,
        hidden: int,
        item_repr: str = "id",
        vectors: np.ndarray | None = None,
        adapter: str = "linear",
        finetune_vectors: bool = False,
        id_init: str = "normal",
    ):
        super().__init__()
        if item_repr not in ITEM_REPRS:
            raise ConfigError(
                f"item representation must be one of {', '.join(ITEM_REPRS)}, not {item_repr!r}"
            )
        self.num_items, self.hidden, self.item_repr = num_items, hidden, item_repr
        self.id_embedding = None
        if item_repr in ("id", "text+id"):
            self.id_embedding = nn.Embedding(num_items + 1, hidden, padding_idx=0)
            _init_id_embedding(self.id_embedding, id_init)
        if item_repr in ("text", "text+id"):
            if vectors is None:
                raise ConfigError(
                    f"item representation {item_repr!r} needs an embeddings file (--embeddings)"
                )
            if vectors.shape[0] != num_items + 1:
                raise ConfigError(f"vectors have {vectors.shape[0]} rows, expected {num_items + 1}")
            tensor = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
            if finetune_vectors:
                self.vectors = nn.Parameter(tensor.clone())
            else:
                self.register_buffer("vectors", tensor.clone())
            self.adapter = make_adapter(tensor.shape[1], hidden, adapter)

    def table(self) -> torch.Tensor:
        """The (N+1, hidden) item representations; row 0 is padding and is never ranked."""
        out = None
        if self.item_repr != "id":
            out = self.adapter(self.vectors)
        if self.id_embedding is not None:
            out = self.id_embedding.weight if out is None else out + self.id_embedding.weight
        return out


def _init_id_embedding(embedding: nn.Embedding, how: str) -> None:
    if how == "normal":  # RecBole's SASRec: N(0, 0.02)
        nn.init.normal_(embedding.weight, std=0.02)
    elif how == "xavier":  # RecBole's GRU4Rec
        nn.init.xavier_normal_(embedding.weight)
    else:
        raise ConfigError(f"id_init must be normal or xavier, not {how!r}")
    with torch.no_grad():
        embedding.weight[0].zero_()
