"""The item-vector file: how item embeddings are written, read back and checked, in one place.

``FILE.npy``: (N+1, d) float32, row i = item i, row 0 = zeros (padding). Beside it ``FILE.json`` records
what produced the vectors (encoder and content hash, pooling, attention, template, normalisation) and for
which data (``num_items``, ``dim``, ``dataset_checksum``). :func:`save_item_vectors` writes both
atomically; :func:`load_item_vectors` reads a file for a dataset and refuses one that does not fit it.
"""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llm2rec.errors import DataFormatError
from llm2rec.io import atomic_write_bytes, atomic_write_json

VECTORS_KIND = "item-vectors"  # the record's "written_as": llm2rec wrote this file (llm2rec.outdir)


def metadata_path(vectors_path: str | Path) -> Path:
    """``FILE.json`` beside ``FILE.npy``."""
    return Path(vectors_path).with_suffix(".json")


def save_item_vectors(path: str | Path, vectors: np.ndarray, metadata: dict) -> Path:
    """Write ``vectors`` to ``path`` (.npy) and ``metadata`` (plus ``dim`` and ``rows``) beside it, atomically."""
    path = Path(path)
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    meta = {
        **metadata,
        "dim": int(vectors.shape[1]),
        "rows": int(vectors.shape[0]),
        "written_as": VECTORS_KIND,
    }
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


def load_item_vectors(
    path: str | Path, num_items: int, dataset_checksum: str | Sequence[str] | None = None
) -> np.ndarray:
    """Load and check an item-vector file: (N+1, d) float32, finite, matching the dataset's metadata.

    When ``<name>.json`` sits beside ``<name>.npy``, its ``num_items``, ``dim`` and ``dataset_checksum``
    must match, which catches vectors extracted for another dataset (or another item order) even when the
    row count happens to agree. ``dataset_checksum`` may list several accepted ids
    (:attr:`~llm2rec.data.dataset.Dataset.known_checksums`); the first is the one reported.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"embeddings file {path} does not exist")
    if path.suffix != ".npy":
        raise DataFormatError(path, "item vectors must be a .npy file of shape (num_items+1, dim)")
    vectors = _read_npy(path)
    _check_array(path, vectors, num_items)
    _check_metadata(path, vectors.shape[1], num_items, dataset_checksum)
    vectors = np.array(vectors)  # leave the memory map
    _check_finite(path, vectors)
    _check_not_degenerate(path, vectors[1:])
    return vectors


def _read_npy(path: Path) -> np.ndarray:
    if path.stat().st_size == 0:
        raise DataFormatError(path, "is empty (0 bytes); re-run `llm2rec embed`")
    try:
        vectors = np.load(path, allow_pickle=False, mmap_mode="r")
    except (ValueError, OSError, EOFError) as exc:
        raise DataFormatError(path, f"not a readable .npy array ({exc})") from exc
    if not isinstance(vectors, np.ndarray):  # np.load opens a zip archive whatever its name
        if hasattr(vectors, "close"):
            vectors.close()
        raise DataFormatError(path, "is an .npz archive, not a .npy array; save one array with numpy.save")
    return vectors


def _check_array(path: Path, vectors: np.ndarray, num_items: int) -> None:
    if vectors.dtype != np.float32:
        raise DataFormatError(
            path, f"dtype is {vectors.dtype}, expected float32 (convert with array.astype('float32'))"
        )
    if vectors.ndim != 2:
        raise DataFormatError(path, f"expected a 2-D array (num_items+1, dim), got shape {vectors.shape}")
    if vectors.shape[1] == 0:
        raise DataFormatError(path, f"has zero columns (shape {vectors.shape}): no vector to use")
    if vectors.shape[0] != num_items + 1:
        raise DataFormatError(
            path,
            f"has {vectors.shape[0]} rows but the dataset has {num_items} items: expected {num_items + 1} "
            "rows (row 0 = padding, row i = item i)",
        )


def _check_metadata(
    path: Path, dim: int, num_items: int, dataset_checksum: str | Sequence[str] | None
) -> None:
    meta_path = metadata_path(path)
    if not meta_path.is_file():
        return
    meta = _read_metadata(meta_path)
    for key, actual in (("num_items", num_items), ("dim", dim)):
        if key in meta and _as_count(meta_path, key, meta[key]) != actual:
            what = "items, the dataset has" if key == "num_items" else f"columns, but {path.name} has"
            raise DataFormatError(
                meta_path, f"says {key} {meta[key]}: vectors were made for {meta[key]} {what} {actual}"
            )
    recorded = meta.get("dataset_checksum")
    accepted = [dataset_checksum] if isinstance(dataset_checksum, str) else list(dataset_checksum or [])
    if accepted and recorded and recorded not in accepted:
        raise DataFormatError(
            meta_path,
            f"vectors were made for dataset {str(recorded)[:12]}…, not this one ({accepted[0][:12]}…): "
            "item rows may be in another order; re-run `llm2rec embed` on this dataset",
        )


def _read_metadata(meta_path: Path) -> dict:
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataFormatError(meta_path, "is not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise DataFormatError(meta_path, f"invalid JSON ({exc.msg})", exc.lineno) from exc
    if not isinstance(meta, dict):
        raise DataFormatError(meta_path, f"must be a JSON object, not a {type(meta).__name__}")
    return meta


def _as_count(meta_path: Path, key: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataFormatError(meta_path, f"{key} must be a whole number, not {value!r}")
    return value


def _check_finite(path: Path, vectors: np.ndarray) -> None:
    bad_rows = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad_rows):
        raise DataFormatError(
            path, f"{len(bad_rows)} rows hold NaN or inf values (first: row {int(bad_rows[0])})"
        )


def _check_not_degenerate(path: Path, items: np.ndarray) -> None:
    """Refuse vectors that cannot rank anything: an all-zero item row, or the same vector for every item
    (a collapsed encoder), which would tie every item with every other."""
    zero_rows = np.flatnonzero(~items.any(axis=1))
    if len(zero_rows):
        raise DataFormatError(
            path, f"{len(zero_rows)} item rows are all zeros (first: row {int(zero_rows[0]) + 1}); an item "
            "needs a vector (row 0, the padding row, is the only zero row)",
        )  # fmt: skip
    if len(items) > 1:
        spread = float(np.abs(items - items[0]).max())
        if spread <= 1e-6 * float(np.abs(items).max()):
            raise DataFormatError(
                path, f"every item has (nearly) the same vector (largest difference {spread:.3g}): a collapsed "
                "encoder cannot rank items",
            )  # fmt: skip


def rank_below_two(items: np.ndarray, tolerance: float = 1e-5) -> bool:
    """True when every item vector is (nearly) a multiple of one vector: rank < 2. O(N·d), no SVD."""
    items = np.asarray(items, dtype=np.float64)
    if len(items) < 2:
        return True
    u = items[np.argmax(np.einsum("ij,ij->i", items, items))]
    residual = items - np.outer(items @ u / (u @ u), u)
    return float(np.abs(residual).max()) <= tolerance * float(np.abs(items).max())
