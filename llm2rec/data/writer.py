"""Writing a prepared dataset: its tables and a manifest with counts and checksums, all or nothing."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from llm2rec import __version__
from llm2rec.data.dataset import FORMAT_VERSION, TABLES, Dataset
from llm2rec.io import atomic_dir, atomic_write_json, sha256_file

if TYPE_CHECKING:
    from llm2rec.data.protocol import Prepared

log = logging.getLogger(__name__)

DATASET_KIND = "dataset"  # what the output marker of a prepared dataset says (llm2rec.outdir)


def sequence_stats(lengths: np.ndarray, num_items: int) -> dict:
    users, inter = len(lengths), int(lengths.sum())
    return {
        "users": users,
        "items": num_items,
        "interactions": inter,
        "mean_sequence_length": float(lengths.mean()) if users else 0.0,
        "median_sequence_length": float(np.median(lengths)) if users else 0.0,
        "density": inter / (users * num_items) if users and num_items else 0.0,
    }


def write_tables(prepared: Prepared, out: str | Path, fields: dict, *, overwrite=False) -> Dataset:
    """Write ``prepared``'s tables and a manifest (``fields`` plus counts and checksums) into ``out``,
    atomically. ``fields`` must hold ``settings`` with ``max_history``."""
    t0 = time.perf_counter()
    lengths = prepared.sequences["items"].map(len).to_numpy()
    stats = sequence_stats(lengths, len(prepared.items))
    with atomic_dir(out, overwrite=overwrite, kind=DATASET_KIND, legacy=("manifest.json",)) as tmp:
        tables = {
            "items": pa.Table.from_pandas(prepared.items, preserve_index=False),
            "sequences": pa.Table.from_pandas(prepared.sequences, preserve_index=False),
            **prepared.examples,
            "csft": prepared.csft,
        }
        checksums = {}
        for name in TABLES:
            path = tmp / f"{name}.parquet"
            pq.write_table(tables[name], path)
            checksums[name] = sha256_file(path)
        counts = {
            **stats,
            **{f"{k}_examples": v.num_rows for k, v in prepared.examples.items()},
            "csft_pairs": prepared.csft.num_rows,
        }
        manifest = {
            "format_version": FORMAT_VERSION,
            "llm2rec_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **fields,
            "counts": counts,
            "tables": checksums,
            "table_rows": {name: tables[name].num_rows for name in TABLES},
        }
        atomic_write_json(tmp / "manifest.json", manifest)
    log.info("wrote %s in %.1fs", out, time.perf_counter() - t0)
    return Dataset.load(out)
