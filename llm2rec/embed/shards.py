"""An extraction's work directory (``<out>.work/``, :func:`llm2rec.io.work_dir_for`): the item shards,
each a vector file with a record that says what it covers and that it finished, and their merge.

A shard is the items at positions ``start .. stop`` (0-based, item-id order): ``shard-00003.npy`` (one row
per item, in the output's dtype) and, once every row is written and on disk, ``shard-00003.json``. An
extraction that was interrupted and is run again reuses every shard whose record matches it (dataset
checksum, encoder content hash, pooling, attention, template, normalisation, max length, dtype, the
shard's bounds) and encodes the rest. Bounds follow from the number of items and the shard size alone
(:func:`plan_shards`; for a dataset smaller than shard size x processes, from the number of processes),
so a run resumed with another number of processes reuses them too.

Process 0 merges the shards by streaming, a block of rows at a time (:class:`llm2rec.data.vectors.VectorRows`),
into ``merged.npy`` in the work directory, renames it to the output and removes the work directory. The
directory holds llm2rec's output marker, listing what it may hold, so a later run (or ``llm2rec run``'s
cleanup) may remove it, and nothing else is taken for ours.
"""

from __future__ import annotations

import fnmatch
import logging
import math
from dataclasses import dataclass
from pathlib import Path

from llm2rec.data.vectors import VectorRows, publish_vector_file, vector_dtype
from llm2rec.errors import DataFormatError, OutputError
from llm2rec.io import atomic_write_json
from llm2rec.outdir import MARKER, marker_kind, write_marker

log = logging.getLogger(__name__)

WORK_KIND = "item-vectors-work"
WORK_FILES = ("shard-*", ".shard-*", "merged.npy")  # ".shard-*": an atomic record write cut short
SHARD_KIND = "item-vector-shard"
DEFAULT_SHARD_SIZE = 16384  # items: what an interruption loses at most, per process
MERGE_BLOCK_BYTES = 16 << 20  # what the merge holds in memory at a time


@dataclass(frozen=True)
class Shard:
    index: int
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def vectors(self, work: Path) -> Path:
        return Path(work) / f"shard-{self.index:05d}.npy"

    def record(self, work: Path) -> Path:
        return Path(work) / f"shard-{self.index:05d}.json"


def plan_shards(num_items: int, world: int, shard_size: int | None = None) -> list[Shard]:
    """Contiguous shards of ``shard_size`` items (default: :data:`DEFAULT_SHARD_SIZE`, or fewer so that
    every one of ``world`` processes gets one)."""
    if shard_size is not None and shard_size < 1:
        raise ValueError(f"shard size must be at least 1, not {shard_size}")
    size = shard_size or max(1, min(DEFAULT_SHARD_SIZE, math.ceil(num_items / max(1, world))))
    return [
        Shard(i, start, min(start + size, num_items)) for i, start in enumerate(range(0, num_items, size))
    ]


def shard_identity(encoder, dataset, *, template: str, normalize: bool, max_length, dtype) -> dict | None:
    """What a shard's vectors depend on; None when the encoder has no content hash (an in-memory model),
    whose shards are then never reused. The encoder's path is left out: a moved run keeps its shards."""
    described = {k: v for k, v in encoder.describe().items() if k != "encoder"}
    if described.get("encoder_hash") is None:
        return None
    return {
        **described,
        "template": template,
        "normalize": bool(normalize),
        "max_length": max_length,
        "dtype": vector_dtype(dtype).name,
        "num_items": int(dataset.num_items),
        "dataset_checksum": dataset.checksum,
    }


def prepare_work_dir(work: Path) -> None:
    """Create ``work`` with its marker, or keep an earlier one of ours; refuse anything else there."""
    work = Path(work)
    if work.exists() or work.is_symlink():
        if not work.is_dir() or work.is_symlink() or marker_kind(work) != WORK_KIND:
            raise OutputError(
                f"{work} exists and is not an llm2rec extraction's work directory; move it out of the way "
                "and run again (llm2rec keeps an extraction's unfinished shards there)"
            )
        return
    work.mkdir(parents=True)
    write_marker(work, WORK_KIND, files=WORK_FILES)


def _expected(shard: Shard, identity: dict | None, dim: int, dtype) -> dict:
    return {
        "written_as": SHARD_KIND,
        "shard": shard.index,
        "start": shard.start,
        "stop": shard.stop,
        "dim": int(dim),
        "dtype": vector_dtype(dtype).name,
        "identity": identity,
    }


def finished(work: Path, shard: Shard, identity: dict | None, dim: int, dtype) -> bool:
    """Whether ``shard`` was finished by an earlier run with the same ``identity`` (and is intact)."""
    return identity is not None and _matches(work, shard, identity, dim, dtype)


def _matches(work: Path, shard: Shard, identity: dict | None, dim: int, dtype) -> bool:
    try:
        record = _read_json(shard.record(work))
        if not record.get("finished"):
            return False
        if any(record.get(k) != v for k, v in _expected(shard, identity, dim, dtype).items()):
            return False
        with VectorRows(shard.vectors(work)) as rows:
            return rows.shape == (shard.rows, dim) and rows.dtype == vector_dtype(dtype)
    except (OSError, ValueError, DataFormatError):
        return False


def _read_json(path: Path) -> dict:
    import json

    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object")
    return data


def forget(work: Path, shard: Shard) -> None:
    """Remove ``shard``'s record before its file is (re)written."""
    shard.record(work).unlink(missing_ok=True)


def mark_finished(work: Path, shard: Shard, identity: dict | None, dim: int, dtype, **extra) -> None:
    """Record that every row of ``shard`` is on disk (call after its :class:`VectorRows` is closed)."""
    atomic_write_json(
        shard.record(work), {**_expected(shard, identity, dim, dtype), **extra, "finished": True}
    )


def merge_shards(
    work: Path, shards: list[Shard], out_path: Path, identity: dict | None, dim: int, dtype, metadata: dict
) -> Path:
    """Stream every shard, in item order, into the (N+1, d) output (row 0 zeros) and publish it; each
    shard's record must say it finished for this ``identity``."""
    work, dtype = Path(work), vector_dtype(dtype)
    num_items = shards[-1].stop if shards else 0
    block = max(1, MERGE_BLOCK_BYTES // max(1, dim * dtype.itemsize))
    merged = work / "merged.npy"
    with VectorRows.create(merged, num_items + 1, dim, dtype) as out:
        for shard in shards:
            if not _matches(work, shard, identity, dim, dtype):
                raise RuntimeError(
                    f"{shard.vectors(work)} is not finished (items {shard.start}..{shard.stop})"
                )
            with VectorRows(shard.vectors(work)) as part:
                for first in range(0, shard.rows, block):
                    out.write(shard.start + 1 + first, part.read(first, min(block, shard.rows - first)))
    return publish_vector_file(merged, out_path, metadata)


def remove_work_dir(work: Path) -> None:
    """Remove a finished extraction's work directory, its marker last (an interruption leaves a directory
    that is still ours). A file that is not one of ours (:data:`WORK_FILES`) is left there, with the
    marker, and said in the log."""
    work = Path(work)
    foreign = []
    for entry in sorted(work.iterdir()):
        if entry.name == MARKER:
            continue
        if (
            entry.is_dir()
            or entry.is_symlink()
            or not any(fnmatch.fnmatchcase(entry.name, p) for p in WORK_FILES)
        ):
            foreign.append(entry.name)
        else:
            entry.unlink()
    if foreign:
        log.warning(
            "left %s in place: it holds %s, which llm2rec did not write there", work, ", ".join(foreign)
        )
        return
    (work / MARKER).unlink()
    work.rmdir()
