"""The item-vector file: how item embeddings are written, read back and checked, in one place.

``FILE.npy``: (N+1, d) float32, row i = item i, row 0 = zeros (padding). Beside it ``FILE.json`` records
what produced the vectors (encoder and content hash, pooling, attention, template, normalisation) and for
which data (``num_items``, ``dim``, ``dataset_checksum``). :func:`save_item_vectors` writes both
atomically; :func:`load_item_vectors` reads a file for a dataset and refuses one that does not fit it.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np

from llm2rec.errors import DataFormatError
from llm2rec.io import atomic_write_bytes, atomic_write_json


def metadata_path(vectors_path: str | Path) -> Path:
    """``FILE.json`` beside ``FILE.npy``."""
    return Path(vectors_path).with_suffix(".json")


def save_item_vectors(path: str | Path, vectors: np.ndarray, metadata: dict) -> Path:
    """Write ``vectors`` to ``path`` (.npy) and ``metadata`` (plus ``dim`` and ``rows``) beside it, atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    meta = {**metadata, "dim": int(vectors.shape[1]), "rows": int(vectors.shape[0])}
    atomic_write_json(metadata_path(path), meta)
    return path


def read_item_vectors(path: str | Path) -> tuple[np.ndarray, dict]:
    """The array and its metadata (``{}`` when there is no ``.json``), unchecked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"item embeddings {path} do not exist; create them with `llm2rec embed`")
    meta_file = metadata_path(path)
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    return np.load(path, allow_pickle=False), meta


def load_item_vectors(path: str | Path, num_items: int, dataset_checksum: str | None = None) -> np.ndarray:
    """Load and check an item-vector file: (N+1, d) float32, finite, matching the dataset's metadata.

    When ``<name>.json`` sits beside ``<name>.npy``, its ``num_items``, ``dim`` and ``dataset_checksum``
    must match, which catches vectors extracted for another dataset (or another item order) even when the
    row count happens to agree.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file {path} does not exist")
    if path.suffix != ".npy":
        raise DataFormatError(path, "item vectors must be a .npy file of shape (num_items+1, dim)")
    try:
        vectors = np.load(path, allow_pickle=False, mmap_mode="r")
    except ValueError as exc:
        raise DataFormatError(path, f"not a readable .npy array ({exc})") from exc
    _check_array(path, vectors, num_items)
    _check_metadata(path, vectors.shape[1], num_items, dataset_checksum)
    vectors = np.array(vectors)  # leave the memory map
    _check_finite(path, vectors)
    return vectors


def _check_array(path: Path, vectors: np.ndarray, num_items: int) -> None:
    if vectors.dtype != np.float32:
        raise DataFormatError(
            path, f"dtype is {vectors.dtype}, expected float32 (convert with array.astype('float32'))"
        )
    if vectors.ndim != 2:
        raise DataFormatError(path, f"expected a 2-D array (num_items+1, dim), got shape {vectors.shape}")
    if vectors.shape[0] != num_items + 1:
        raise DataFormatError(
            path,
            f"has {vectors.shape[0]} rows but the dataset has {num_items} items: expected {num_items + 1} "
            "rows (row 0 = padding, row i = item i)",
        )


def _check_metadata(path: Path, dim: int, num_items: int, dataset_checksum: str | None) -> None:
    meta_path = metadata_path(path)
    if not meta_path.is_file():
        return
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataFormatError(meta_path, f"invalid JSON ({exc.msg})", exc.lineno) from exc
    if "num_items" in meta and int(meta["num_items"]) != num_items:
        raise DataFormatError(
            meta_path, f"vectors were made for {meta['num_items']} items, the dataset has {num_items}"
        )
    if "dim" in meta and int(meta["dim"]) != dim:
        raise DataFormatError(meta_path, f"says dim {meta['dim']} but {path.name} has {dim} columns")
    recorded = meta.get("dataset_checksum")
    if dataset_checksum and recorded and recorded != dataset_checksum:
        raise DataFormatError(
            meta_path,
            f"vectors were made for dataset {recorded[:12]}…, not this one ({dataset_checksum[:12]}…): "
            "item rows may be in another order; re-run `llm2rec embed` on this dataset",
        )


def _check_finite(path: Path, vectors: np.ndarray) -> None:
    bad_rows = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad_rows):
        raise DataFormatError(
            path, f"{len(bad_rows)} rows hold NaN or inf values (first: row {int(bad_rows[0])})"
        )
