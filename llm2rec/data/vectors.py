"""The item-vector file: how item embeddings are written, read back and checked, in one place.

``FILE.npy``: (N+1, d) float32 or float16 (half the file; ``llm2rec embed --dtype float16``), row i =
item i, row 0 = zeros (padding). Beside it ``FILE.json`` records what produced the vectors (encoder and
content hash, pooling, attention, template, normalisation), for which data (``num_items``, ``dim``,
``dataset_checksum``) and how they are stored (``dtype``). :func:`save_item_vectors` writes both
atomically from an array in memory; :class:`VectorRows` and :func:`publish_vector_file` write a file too
large for memory block by block (the extraction's shards and merge). :func:`load_item_vectors` reads
a file for a dataset, refuses one that does not fit it and returns float32 whatever the file stores.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llm2rec.errors import ConfigError, DataFormatError
from llm2rec.io import atomic_write_bytes, atomic_write_json
from llm2rec.outdir import follow_umask

VECTORS_KIND = "item-vectors"  # the record's "written_as": llm2rec wrote this file (llm2rec.outdir)
VECTOR_DTYPES = ("float32", "float16")  # what a vector file may store; readers always return float32
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def vector_dtype(name) -> np.dtype:
    """The storage dtype ``name`` (``float32`` or ``float16``), refused with the choices otherwise."""
    text = np.dtype(name).name if isinstance(name, np.dtype | type) else str(name)
    if text not in VECTOR_DTYPES:
        raise ConfigError(f"--dtype {text}: item vectors are stored as {' or '.join(VECTOR_DTYPES)}")
    return np.dtype(text)


def as_stored(vectors: np.ndarray, dtype) -> np.ndarray:
    """``vectors`` in the storage ``dtype``; a value float16 cannot hold is refused, not turned into inf."""
    dtype = vector_dtype(dtype)
    if dtype == np.float16 and len(vectors):
        largest = float(np.nanmax(np.abs(vectors)))
        if largest > _FLOAT16_MAX:
            raise ConfigError(
                f"--dtype float16: an item vector holds a value of magnitude {largest:.4g}, beyond float16's "
                f"{_FLOAT16_MAX:g}; store them as --dtype float32 (or L2-normalise them with --normalize)"
            )
    return np.asarray(vectors, dtype=dtype)


def metadata_path(vectors_path: str | Path) -> Path:
    """``FILE.json`` beside ``FILE.npy``."""
    return Path(vectors_path).with_suffix(".json")


def save_item_vectors(path: str | Path, vectors: np.ndarray, metadata: dict) -> Path:
    """Write ``vectors`` to ``path`` (.npy) and ``metadata`` (plus ``dim``, ``rows`` and ``dtype``) beside
    it, atomically. ``vectors`` are stored in their own dtype (float32 or float16)."""
    path = Path(path)
    dtype = vector_dtype(vectors.dtype)
    buffer = io.BytesIO()
    np.save(buffer, vectors, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    _write_record(path, metadata, vectors.shape, dtype)
    return path


def _write_record(path: Path, metadata: dict, shape: tuple[int, int], dtype: np.dtype) -> None:
    meta = {
        **metadata,
        "dim": int(shape[1]),
        "rows": int(shape[0]),
        "dtype": dtype.name,
        "written_as": VECTORS_KIND,
    }
    atomic_write_json(metadata_path(path), meta)


class VectorRows:
    """A (rows, dim) ``.npy`` file written and read by row position through its file descriptor.

    No memory map: the rows that pass through never count as the process's memory (pages of a mapped
    file do, for as long as they are mapped), so writing a shard or merging 10M rows stays at the size of
    one block. :meth:`create` makes a new file (every row zeros until written); a context manager, whose
    exit flushes the file to disk."""

    def __init__(self, path: str | Path, *, write: bool = False):
        self.path = Path(path)
        view = np.load(self.path, mmap_mode="r", allow_pickle=False)  # the header only: no page is read
        if not isinstance(view, np.memmap) or view.ndim != 2 or not view.flags.c_contiguous:
            raise DataFormatError(self.path, "is not a 2-D C-order .npy array")
        self.shape, self.dtype, self._offset = view.shape, view.dtype, int(view.offset)
        del view
        self._row_bytes = self.shape[1] * self.dtype.itemsize
        self._writes = write
        self._fd = os.open(self.path, os.O_RDWR if write else os.O_RDONLY)

    @classmethod
    def create(cls, path: str | Path, rows: int, dim: int, dtype) -> VectorRows:
        mapped = np.lib.format.open_memmap(
            Path(path), mode="w+", dtype=vector_dtype(dtype), shape=(rows, dim)
        )
        del mapped  # header written, file sized (sparse): nothing of it was touched
        return cls(path, write=True)

    def write(self, first: int, block: np.ndarray) -> None:
        """Rows ``first .. first+len(block)`` (``block`` in this file's dtype)."""
        data = np.ascontiguousarray(block, dtype=self.dtype)
        if data.ndim != 2 or data.shape[1] != self.shape[1] or first < 0 or first + len(data) > self.shape[0]:
            raise ValueError(f"{self.path}: cannot write {data.shape} at row {first} of {self.shape}")
        view, offset = memoryview(data).cast("B"), self._offset + first * self._row_bytes
        while view:
            done = os.pwrite(self._fd, view, offset)
            view, offset = view[done:], offset + done

    def scatter(self, rows: np.ndarray, block: np.ndarray) -> None:
        """``block[k]`` into row ``rows[k]``, one write per run of consecutive rows."""
        order = np.argsort(rows, kind="stable")
        rows, block = np.asarray(rows)[order], block[order]
        breaks = np.flatnonzero(np.diff(rows) != 1) + 1
        for part in np.split(np.arange(len(rows)), breaks):
            if len(part):
                self.write(int(rows[part[0]]), block[part[0] : part[-1] + 1])

    def read(self, first: int, count: int) -> np.ndarray:
        size = count * self._row_bytes
        data = os.pread(self._fd, size, self._offset + first * self._row_bytes)
        if len(data) != size:
            raise DataFormatError(
                self.path, f"is truncated (rows {first}..{first + count} of {self.shape[0]})"
            )
        return np.frombuffer(data, dtype=self.dtype).reshape(count, self.shape[1])

    def close(self) -> None:
        if self._fd is not None:
            if self._writes:
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> VectorRows:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def publish_vector_file(work_file: str | Path, path: str | Path, metadata: dict) -> Path:
    """Move a finished ``work_file`` (a closed :class:`VectorRows`, on the same file system) to ``path`` in
    one rename, then write its record: ``path`` is the old file or the whole new one, never half of it."""
    work_file, path = Path(work_file), Path(path)
    with VectorRows(work_file) as done:
        shape, dtype = done.shape, vector_dtype(done.dtype)
    follow_umask(work_file, directory=False)
    os.replace(work_file, path)
    _write_record(path, metadata, shape, dtype)
    return path


def read_item_vectors(path: str | Path) -> tuple[np.ndarray, dict]:
    """The array (float32, whatever the file stores) and its metadata (``{}`` without a ``.json``), unchecked."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"item embeddings {path} do not exist; create them with `llm2rec embed`")
    meta_file = metadata_path(path)
    meta = json.loads(meta_file.read_text(encoding="utf-8")) if meta_file.is_file() else {}
    vectors = np.load(path, allow_pickle=False)
    return (vectors.astype(np.float32) if vectors.dtype == np.float16 else vectors), meta


def load_item_vectors(
    path: str | Path, num_items: int, dataset_checksum: str | Sequence[str] | None = None
) -> np.ndarray:
    """Load and check an item-vector file: (N+1, d) float32 or float16, finite, matching the dataset's
    metadata; returned as float32 (a float16 file is widened, so callers see one dtype).

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
    _check_metadata(path, vectors, num_items, dataset_checksum)
    vectors = np.array(vectors, dtype=np.float32)  # leave the memory map; float16 files are widened
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
    if vectors.dtype.name not in VECTOR_DTYPES:
        raise DataFormatError(
            path,
            f"dtype is {vectors.dtype}, expected float32 (or float16; convert with array.astype('float32'))",
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
    path: Path, vectors: np.ndarray, num_items: int, dataset_checksum: str | Sequence[str] | None
) -> None:
    meta_path = metadata_path(path)
    if not meta_path.is_file():
        return
    meta = _read_metadata(meta_path)
    dim = vectors.shape[1]
    recorded_dtype = meta.get("dtype", vectors.dtype.name)  # records before float16 existed: float32
    if recorded_dtype != vectors.dtype.name:
        raise DataFormatError(
            meta_path, f"says dtype {recorded_dtype!r} but {path.name} stores {vectors.dtype.name}: the record "
            "belongs to another file; re-run `llm2rec embed`",
        )  # fmt: skip
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
