"""D3/BIGRec CSVs (the files LLM2Rec's CSFT stage reads), e.g. MiniOneRec's and R3's Amazon 2018 sets.

Each row holds a user's previous ≤ 10 items and the next one:
``user_id, history_item_title, item_title, history_item_id, item_id[, item_asins, item_asin, history_rating,
rating, history_timestamp, timestamp, ...]``. List columns are Python literals (parsed with
``ast.literal_eval``, never ``eval``).

* Per-user sequences are rebuilt from the overlapping rows, reading the files in the given order (in a
  directory: train, then valid, then test, by folder or file name). Rows whose history does not continue the
  rebuilt sequence are counted in ``notes["history_disagreements"]``.
* Item key: ``item_asin``/``item_asins`` when present, else ``item_id``/``history_item_id``.
* Time: ``timestamp``/``history_timestamp`` (seconds are converted to ms) when present, else per-user ordinals.
* Titles: the CSV title columns, completed by ``info/*.txt`` (``[semantic id<TAB>]title<TAB>item_id``) and
  ``index/*.item.json`` (``{item_id: {title, description, brand, categories}}``) files among the inputs.

Options: ``name`` (only files whose name starts with it, for folders holding several datasets),
``use_shipped_split`` (label each target by its file's split; history-only items are train).
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.data.schema import SPLITS, BadLines, RawLog
from llm2rec.data.sources._common import (
    LITERAL_ERRORS,
    check_options,
    describe_inputs,
    expand_inputs,
    interactions_log,
    items_frame,
    iter_text_lines,
    merge_row,
    ordinal_timestamps,
    parse_literal_list,
    parse_rating,
    parse_timestamp,
    read_csv_table,
    strip_compression,
    timestamp_notes,
    to_milliseconds,
)
from llm2rec.errors import ConfigError, DataFormatError

TEXT_FIELDS = ("description", "brand", "categories")


@dataclass
class Row:
    """One parsed CSV row: the history (keys, times, ratings) and the target."""

    user: str
    history: list[str]
    target: str
    history_times: list[int] | None = None
    time: int | None = None
    history_ratings: list[float] | None = None
    rating: float = float("nan")
    split: str = "train"


@dataclass
class ItemTexts:
    """What the files say about items: titles and text by key, and source item ids → keys."""

    fields: dict[str, dict[str, str]] = field(default_factory=lambda: {"title": {}})
    id_to_key: dict[str, str] = field(default_factory=dict)
    title_disagreements: int = 0

    def add_title(self, key: str, title) -> None:
        """The first non-blank title of an item wins; later different ones are counted."""
        if not isinstance(title, str) or not title.strip():
            return
        known = self.fields["title"].setdefault(key, title)
        self.title_disagreements += known != title


def _is_csv(path: Path) -> bool:
    return strip_compression(path.name).endswith(".csv")


def _accept(path: Path) -> bool:
    return _is_csv(path) or path.name.endswith(".item.json") or path.suffix == ".txt"


def split_of(path: Path) -> str | None:
    """The split named by the file's folder (``valid/x.csv``) or name (``x.valid.csv``), if any."""
    parts = strip_compression(path.name).split(".")
    for candidate in (path.parent.name, parts[-2] if len(parts) >= 3 else ""):
        if candidate in SPLITS:
            return candidate
    return None


def read(
    inputs: list[Path], *, bad: BadLines, name: str | None = None, use_shipped_split: bool = False, **options
) -> RawLog:
    check_options("d3", options)
    files = _select(inputs, name)
    csvs = [f for f in files if _is_csv(f)]
    if not csvs:
        raise DataFormatError(describe_inputs(inputs), "no D3/BIGRec CSV found")
    splits = [split_of(f) for f in csvs]
    if use_shipped_split and None in splits:
        raise ConfigError(
            f"cannot keep the shipped split: {csvs[splits.index(None)]} is not in a train/valid/test "
            "folder and has no .train/.valid/.test name"
        )
    catalogue = ItemTexts()
    rows: list[Row] = []
    for path, split in zip(csvs, splits):
        rows.extend(_read_csv(path, bad, catalogue, split or "train"))
    if not rows:
        raise DataFormatError(csvs[0], "no usable rows" + bad.why_empty())
    for path in files:
        if path.name.endswith(".item.json"):
            _read_item_json(path, catalogue)
        elif path.suffix == ".txt":
            _read_info(path, bad, catalogue)
    log = _rebuild(rows, bad, use_shipped_split)
    ordered = dict.fromkeys(log.interactions["item"].tolist())
    log.items = items_frame(ordered, catalogue.fields)
    log.source_files = files
    log.notes.update(
        {
            "csv_rows": len(rows),
            "title_disagreements": catalogue.title_disagreements,
            "items_without_title": sum(1 for k in ordered if not catalogue.fields["title"].get(k)),
        }
    )
    return log


def _select(inputs: list[Path], name: str | None) -> list[Path]:
    files = expand_inputs(inputs, _accept)
    if name:
        files = [f for f in files if f.name.startswith(name)]
    from_dirs = [f for f in files if not any(Path(p) == f for p in inputs)]
    stems = sorted({_dataset_name(f) for f in from_dirs if _is_csv(f)})
    if len(stems) > 1:
        raise ConfigError(
            f"the input folder holds several datasets ({', '.join(stems)}); pass --option "
            "name=<prefix> or the files of one dataset"
        )
    # Inside a folder, read train, then valid, then test: rows must come in time order per user.
    rank = {f: (SPLITS.index(split_of(f)) if split_of(f) else -1) for f in from_dirs}
    return sorted(from_dirs, key=lambda f: rank[f]) + [f for f in files if f not in rank]


def _dataset_name(path: Path) -> str:
    """``valid/Office_5.csv`` and ``Office_5.test.csv.gz`` → "Office_5"."""
    stem = strip_compression(path.name)[: -len(".csv")]
    base, _, split = stem.rpartition(".")
    return base if base and split in SPLITS else stem


# --------------------------------------------------------------------------- CSV rows


def _read_csv(path: Path, bad: BadLines, catalogue: ItemTexts, split: str) -> list[Row]:
    table = read_csv_table(path, bad, sep=",")
    has_asin = "item_asin" in table.columns
    key_cols = ("item_asins", "item_asin") if has_asin else ("history_item_id", "item_id")
    required = ["user_id", *key_cols]
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise DataFormatError(
            path,
            f"missing column(s) {missing}: expected {required} (and optionally "
            f"history_item_title, item_title, timestamp...), found {list(table.columns)}",
        )
    rows = []
    for number, record in zip(range(2, len(table) + 2), table.to_dict("records")):
        try:
            rows.append(_parse_row(record, key_cols, catalogue, split))
        except LITERAL_ERRORS as exc:
            bad.handle(path, number, f"bad row: {' '.join(str(exc).split())[:200]}")
    return rows


def _parse_row(record: dict, key_cols: tuple[str, str], catalogue: ItemTexts, split: str) -> Row:
    user = record["user_id"].strip()
    history = [_key(v) for v in parse_literal_list(record[key_cols[0]])]
    target = _key(record[key_cols[1]])
    if not user:
        raise ValueError("empty user_id")
    row = Row(user, history, target, split=split)
    row.history_times = _aligned(record, "history_timestamp", history, parse_timestamp)
    if record.get("timestamp", "") != "":
        row.time = parse_timestamp(record["timestamp"])
    row.history_ratings = _aligned(record, "history_rating", history, parse_rating)
    row.rating = parse_rating(record.get("rating", ""))
    titles = _aligned(record, "history_item_title", history, lambda t: t if isinstance(t, str) else None)
    if "item_asin" in record:  # map source item ids to ASINs, for info/ and index/ files keyed by id
        ids = _aligned(record, "history_item_id", history, _key) or []
        catalogue.id_to_key.update(zip(ids, history))
        if record.get("item_id", "") != "":
            catalogue.id_to_key[_key(record["item_id"])] = target
    for key, title in zip(history, titles or []):
        catalogue.add_title(key, title)
    catalogue.add_title(target, record.get("item_title"))
    return row


def _aligned(record: dict, column: str, history: list, parse) -> list | None:
    """A list column that must have one value per history item; None when the column is absent or empty."""
    text = record.get(column, "")
    if text == "":
        return None
    values = parse_literal_list(text)
    if len(values) != len(history):
        raise ValueError(f"{column} has {len(values)} values for {len(history)} history items")
    return [parse(v) for v in values]


def _key(value) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"item key {value!r} is not a string or integer")
    key = str(value).strip()
    if not key:
        raise ValueError("empty item key")
    return key


# --------------------------------------------------------------------------- sequences


def _rebuild(rows: list[Row], bad: BadLines, use_shipped_split: bool) -> RawLog:
    sequences: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    has_time = all(r.time is not None and r.history_times is not None for r in rows)
    disagreements = 0
    for row in rows:
        seq = sequences[row.user]
        prepend, append_from, agreed = merge_row(seq["item"], row.history)
        disagreements += not agreed
        extra = {
            "item": row.history,
            "time": row.history_times,
            "rating": row.history_ratings,
            # history-only items: train, or (after a gap) the split before them, so labels never go backwards
            "split": [seq["split"][-1] if seq["split"] else "train"] * len(row.history),
        }
        for column, values in extra.items():
            values = values if values is not None else [None] * len(row.history)
            seq[column][:0] = values[:prepend] if column != "split" else ["train"] * prepend
            seq[column].extend(values[append_from:])
        for column, value in (
            ("item", row.target),
            ("time", row.time),
            ("rating", row.rating),
            ("split", row.split),
        ):
            seq[column].append(value)
    flat = {c: [] for c in ("user", "item", "time", "rating", "split")}
    for user, seq in sequences.items():
        flat["user"].extend([user] * len(seq["item"]))
        for column in ("item", "time", "rating", "split"):
            flat[column].extend(seq[column])
    ratings = np.array([np.nan if r is None else r for r in flat["rating"]], dtype=np.float64)
    notes = {"users": len(sequences), "history_disagreements": disagreements}
    if has_time:
        timestamps, converted = to_milliseconds(flat["time"])
        notes.update(timestamp_notes(converted, len(timestamps)))
    else:
        timestamps = ordinal_timestamps(flat["user"])
        notes["time"] = "no timestamp columns: per-user ordinals"
    presplit = pd.Series(flat["split"], dtype=str) if use_shipped_split else None
    if use_shipped_split:
        notes["split"] = "shipped split used as-is (targets labelled by their file; history-only items train)"
    return interactions_log("d3", flat["user"], flat["item"], timestamps, ratings, has_time=has_time,
                            presplit=presplit, bad=bad, notes=notes)  # fmt: skip


# --------------------------------------------------------------------------- info/ and index/ files


def _read_info(path: Path, bad: BadLines, catalogue: ItemTexts) -> None:
    """``[semantic id<TAB>]title<TAB>item_id`` lines complete missing titles."""
    for number, text in iter_text_lines(path, bad):
        parts = text.rstrip("\r\n").split("\t")
        if len(parts) < 2 or not parts[-1].strip():
            bad.handle(path, number, "expected '[semantic id<TAB>]title<TAB>item_id'")
            continue
        key = _id_to_key(parts[-1].strip(), catalogue)
        if key is not None:
            catalogue.add_title(key, parts[-2])


def _read_item_json(path: Path, catalogue: ItemTexts) -> None:
    """``{item_id: {title, description, brand, categories}}``: titles (when missing) and text fields."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (UnicodeDecodeError, *LITERAL_ERRORS) as exc:
        raise DataFormatError(path, f"not a valid JSON file: {' '.join(str(exc).split())[:200]}") from exc
    if not isinstance(data, dict):
        raise DataFormatError(
            path, "expected a JSON object {item_id: {title, description, brand, categories}}"
        )
    for item_id, info in data.items():
        key = _id_to_key(str(item_id), catalogue)
        if key is None or not isinstance(info, dict):
            continue
        catalogue.add_title(key, info.get("title"))
        for name in TEXT_FIELDS:
            value = info.get(name)
            if value not in (None, ""):
                catalogue.fields.setdefault(name, {}).setdefault(key, _joined(value))


def _joined(value) -> str:
    """Text fields of index/*.item.json are often list literals ("['a', 'b']"): joined with spaces."""
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            value = parse_literal_list(value)
        except LITERAL_ERRORS:
            return value
    if isinstance(value, list):
        return " ".join(str(v).strip() for v in value if str(v).strip())
    return str(value)


def _id_to_key(item_id: str, catalogue: ItemTexts) -> str | None:
    """Source item id → item key (the id itself when the CSVs are keyed by id; None for an unseen ASIN)."""
    if catalogue.id_to_key:
        return catalogue.id_to_key.get(item_id)
    return item_id
