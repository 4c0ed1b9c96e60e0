"""A small writer of prepared-dataset directories (the documented Parquet tables + manifest.json), so the
seqrec tests do not depend on any reader or on the protocol's k-core/renumbering."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from llm2rec.data.dataset import Dataset


def write_loo_dataset(
    root: Path, sequences: list[list[int]], num_items: int, max_history: int = 10
) -> Dataset:
    """Leave-one-out: last item = test, second-to-last = valid, the rest = train (every sequence ≥ 3 long)."""
    root.mkdir(parents=True, exist_ok=True)
    items = pd.DataFrame(
        {
            "item_id": np.arange(1, num_items + 1, dtype=np.int32),
            "key": [f"I{i}" for i in range(1, num_items + 1)],
            "title": [f"item {i}" for i in range(1, num_items + 1)],
        }
    )
    seqs = pd.DataFrame(
        {
            "user": np.arange(len(sequences), dtype=np.int32),
            "user_key": [f"U{u}" for u in range(len(sequences))],
            "items": [np.asarray(s, dtype=np.int32) for s in sequences],
            "timestamps": [np.arange(len(s), dtype=np.int64) for s in sequences],
            "n_train": np.array([len(s) - 2 for s in sequences], dtype=np.int32),
            "n_valid": np.ones(len(sequences), dtype=np.int32),
        }
    )
    rows = {"train": [], "valid": [], "test": []}
    for user, seq in enumerate(sequences):
        n = len(seq)
        for t in range(1, n):
            split = "test" if t == n - 1 else "valid" if t == n - 2 else "train"
            rows[split].append(
                {"user": user, "history": list(seq[max(0, t - max_history) : t]), "target": seq[t]}
            )
    items.to_parquet(root / "items.parquet")
    seqs.to_parquet(root / "sequences.parquet")
    for split, split_rows in rows.items():
        pd.DataFrame(split_rows, columns=["user", "history", "target"]).to_parquet(root / f"{split}.parquet")
    manifest = {
        "format_version": 1,
        "counts": {"items": num_items, "users": len(sequences)},
        "settings": {"max_history": max_history},
        "tables": {},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return Dataset.load(root)


def cyclic_sequences(num_users: int, num_items: int, length: int, seed: int = 0) -> list[list[int]]:
    """Each user walks the catalogue in order from a random start (item i is always followed by i+1, wrapping):
    a perfectly learnable next-item rule."""
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, num_items, size=num_users)
    return [[int((s + k) % num_items) + 1 for k in range(length)] for s in starts]


@pytest.fixture
def make_dataset():
    """The dataset writer, as a fixture (test modules here are not importable packages)."""
    return write_loo_dataset


@pytest.fixture
def make_cyclic():
    return cyclic_sequences


@pytest.fixture
def cyclic_dataset(tmp_path) -> Dataset:
    return write_loo_dataset(tmp_path / "cyclic", cyclic_sequences(200, 30, 8), num_items=30, max_history=5)
