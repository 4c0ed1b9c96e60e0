"""The prepared dataset on disk, and the :class:`Dataset` every later stage reads.

Layout of a prepared directory (all tables Parquet):

``items.parquet``
    ``item_id`` (int32, 1..N, contiguous; 0 is padding and has no row), ``key`` (str, the source's item id,
    e.g. an ASIN), ``title`` (str, cleaned), and optional text columns (``description``, ``brand``,
    ``categories``...). Ids are given in order of each item's first appearance in the chronologically
    sorted log (ties by user key), so they are reproducible.
``sequences.parquet``
    One row per user: ``user`` (int32, 0..U-1), ``user_key`` (str), ``items`` (list<int32>, the user's whole
    chronological sequence), ``timestamps`` (list<int64>, ms; per-user ordinals when the source had none),
    ``n_train``, ``n_valid`` (int32). The first ``n_train`` items are training, the next ``n_valid`` are
    validation, the rest are test. Leave-one-out gives ``n_valid = 1`` and one test item.
``train.parquet`` / ``valid.parquet`` / ``test.parquet``
    One row per prediction: ``user``, ``history`` (list<int32>, the last ``max_history`` items before the
    target, oldest first), ``target`` (int32). Train rows are every position of the training part that has
    at least one earlier item; valid rows see the training part; test rows see training + validation.
``csft.parquet``
    The CSFT pairs, built from the training part only: ``user``, ``history`` (ids), ``target`` (id),
    ``history_titles`` (list<str>), ``target_title`` (str).
``manifest.json``
    Source files (name, size, sha256), protocol settings, counts kept and dropped with reasons, statistics,
    and the sha256 of every table above.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.errors import DatasetError
from llm2rec.io import sha256_file

FORMAT_VERSION = 1
TABLES = ("items", "sequences", "train", "valid", "test", "csft")


@dataclass
class Dataset:
    root: Path
    manifest: dict

    @classmethod
    def load(cls, root: str | Path) -> Dataset:
        """Open a prepared dataset, checking its manifest and every table against it (checksum, rows),
        so a missing, truncated or edited file is named at once instead of breaking a later stage."""
        root = Path(root)
        dataset = cls(root=root, manifest=_read_manifest(root))
        dataset.verify()
        return dataset

    def _table(self, name: str) -> pd.DataFrame:
        path = self.root / f"{name}.parquet"
        if not path.is_file():
            raise DatasetError(
                f"{path} is missing: the dataset directory is incomplete; re-run `llm2rec prepare`"
            )
        try:
            return pd.read_parquet(path)
        except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise DatasetError(
                f"{path} is not a readable Parquet table ({exc}); re-run `llm2rec prepare`"
            ) from None

    @cached_property
    def items(self) -> pd.DataFrame:
        return self._table("items")

    @cached_property
    def sequences(self) -> pd.DataFrame:
        return self._table("sequences")

    def split(self, name: str) -> pd.DataFrame:
        if name not in ("train", "valid", "test"):
            raise ValueError(f"unknown split {name!r}; expected train, valid or test")
        return self._table(name)

    def csft_pairs(self) -> pd.DataFrame:
        return self._table("csft")

    @property
    def num_items(self) -> int:
        return int(self.manifest["counts"]["items"])

    @property
    def num_users(self) -> int:
        return int(self.manifest["counts"]["users"])

    @property
    def max_history(self) -> int:
        return int(self.manifest["settings"]["max_history"])

    @cached_property
    def titles(self) -> list[str]:
        """``titles[i]`` is item i's title; ``titles[0]`` is the empty padding title."""
        out = [""] * (self.num_items + 1)
        for item_id, title in zip(self.items["item_id"], self.items["title"], strict=True):
            out[int(item_id)] = title
        return out

    @cached_property
    def cold_items(self) -> np.ndarray:
        """Ids of the cold-start items (held out of every training part; ``prepare --cold-items``)."""
        if "cold" not in self.items.columns:
            return np.zeros(0, dtype=np.int64)
        return self.items["item_id"].to_numpy()[self.items["cold"].to_numpy(dtype=bool)].astype(np.int64)

    @cached_property
    def training_titles(self) -> list[str]:
        """:attr:`titles` as the LLM stages may train on them: a cold item's title is blanked (``""``)
        unless the dataset was prepared with ``cold_titles_known``."""
        if not len(self.cold_items) or self.manifest["settings"].get("cold_titles_known"):
            return self.titles
        out = list(self.titles)
        for item_id in self.cold_items:
            out[int(item_id)] = ""
        return out

    def train_sequences(self) -> list[np.ndarray]:
        """Each user's training part (chronological item ids), for recommenders that train on prefixes."""
        seqs = self.sequences
        return [
            np.asarray(s[:n], dtype=np.int64) for s, n in zip(seqs["items"], seqs["n_train"], strict=True)
        ]

    @property
    def checksum(self) -> str:
        """One id for the data: sha256 over the tables' names and sha256s as the manifest records them.

        It leaves out the rest of the manifest (its creation time, the input's path), so the same tables
        prepared twice, another day or into another directory, keep one id and each other's vectors and
        models. A manifest without table checksums falls back to its own sha256."""
        tables = self.manifest.get("tables")
        if not tables:
            return self.manifest_sha256
        canonical = json.dumps(sorted(tables.items()), separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    @property
    def manifest_sha256(self) -> str:
        """sha256 of manifest.json: the id vectors and models recorded before ``checksum`` left the manifest's
        creation time out (2026-12-05); still accepted, see :attr:`known_checksums`."""
        return sha256_file(self.root / "manifest.json")

    @property
    def known_checksums(self) -> tuple[str, ...]:
        """Every id a vector file or a saved model may have recorded for this data."""
        return (self.checksum, self.manifest_sha256)

    def verify(self) -> None:
        """Every table exists and matches the manifest's sha256 and row count (when it records them)."""
        import pyarrow.parquet as pq

        rows = self.manifest.get("table_rows", {})
        for name, expected in self.manifest.get("tables", {}).items():
            path = self.root / f"{name}.parquet"
            if not path.is_file():
                raise DatasetError(
                    f"{path} is missing: the dataset directory is incomplete; re-run `llm2rec prepare`"
                )
            if sha256_file(path) != expected:
                raise DatasetError(
                    f"{path} does not match its manifest checksum (changed or truncated); re-run `llm2rec prepare`"
                )
            if name in rows and pq.ParquetFile(path).metadata.num_rows != rows[name]:
                raise DatasetError(f"{path} does not hold the {rows[name]} rows its manifest records")


def _read_manifest(root: Path) -> dict:
    path = root / "manifest.json"
    if not path.is_file():
        raise DatasetError(
            f"{root} is not a prepared dataset (no manifest.json); create one with `llm2rec prepare`"
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc}); re-run `llm2rec prepare`") from None
    if not isinstance(manifest, dict):
        raise DatasetError(f"{path}: expected a JSON object, got a {type(manifest).__name__}")
    if manifest.get("format_version") != FORMAT_VERSION:
        raise DatasetError(
            f"{path}: dataset format version {manifest.get('format_version')} is not "
            f"{FORMAT_VERSION}; re-run `llm2rec prepare`"
        )
    if not isinstance(manifest.get("counts"), dict):
        raise DatasetError(
            f"{path}: the 'counts' entry is missing or not an object; re-run `llm2rec prepare`"
        )
    for key in ("settings", "tables", "table_rows"):
        if not isinstance(manifest.get(key, {}), dict):
            raise DatasetError(f"{path}: the {key!r} entry is not an object; re-run `llm2rec prepare`")
    for key in ("items", "users"):
        if not isinstance(manifest["counts"].get(key), int):
            raise DatasetError(f"{path}: counts.{key} is missing or not a number; re-run `llm2rec prepare`")
    return manifest
