"""Amazon Reviews 2023 benchmark CSVs (``rating_only``, ``last_out[_w_his]``, ``timestamp[_w_his]``).

Inputs: ``<Category>.csv[.gz]`` (rating_only) or ``<Category>.{train,valid,test}.csv[.gz]``, with or without the
header row ``user_id,parent_asin,rating,timestamp[,history]``, plus a ``meta_<Category>.jsonl[.gz]`` file for the
titles (the CSVs carry none). A directory contributes its ``*.csv[.gz]`` and ``meta_*.jsonl[.gz]`` files.

Options: ``use_shipped_split`` (bool): keep the files' train/valid/test split (``RawLog.presplit``); the notes
then say that the shipped split is used as-is.

The ``history`` column of ``*_w_his`` files repeats what the rows already hold (one row per interaction), so it
only completes and checks them: earlier items that a user's last history names but no given row holds (when
the train file is not given) are added as train events 1 ms apart just before the user's first row
(``notes["history_items_added"]``); rows whose history then still differs from the user's earlier distinct
items are counted in ``notes["history_disagreements"]``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.data.schema import SPLITS, BadLines, RawLog
from llm2rec.data.sources._common import (
    GZIP_ERRORS,
    check_not_empty,
    check_options,
    describe_inputs,
    expand_inputs,
    interactions_frame,
    items_frame,
    open_binary,
    read_csv_table,
    require_columns,
    strip_compression,
    timestamp_notes,
    to_milliseconds,
)
from llm2rec.data.sources.amazon2023 import is_jsonl, is_meta, read_meta_files
from llm2rec.errors import ConfigError, DataFormatError

COLUMNS = ["user_id", "parent_asin", "rating", "timestamp"]
HISTORY = "history"


def _accept(path: Path) -> bool:
    name = strip_compression(path.name)
    return name.endswith(".csv") or (is_meta(path) and is_jsonl(path))


def split_of(path: Path) -> str | None:
    """``Video_Games.valid.csv.gz`` → "valid"; ``Video_Games.csv`` → None."""
    parts = strip_compression(path.name).split(".")
    return parts[-2] if len(parts) >= 3 and parts[-2] in SPLITS else None


def read(inputs: list[Path], *, bad: BadLines, use_shipped_split: bool = False, **options) -> RawLog:
    check_options("amazon2023-benchmark", options)
    files = expand_inputs(inputs, _accept)
    metas = [f for f in files if is_meta(f)]
    csvs = [f for f in files if not is_meta(f)]
    if not csvs:
        raise DataFormatError(
            describe_inputs(inputs), "no benchmark CSV found (expected <Category>[.<split>].csv[.gz])"
        )
    if not metas:
        raise DataFormatError(
            describe_inputs(inputs),
            "the benchmark CSVs carry no titles, and titles are needed: add the category's "
            "meta_<Category>.jsonl[.gz] (e.g. `llm2rec data download <Category> --kind raw`) to the inputs",
        )
    splits = [split_of(f) for f in csvs]
    if use_shipped_split and None in splits:
        unsplit = csvs[splits.index(None)]
        raise ConfigError(
            f"{unsplit} holds no split (not <Category>.train|valid|test.csv); cannot keep the shipped split"
        )
    order = sorted(range(len(csvs)), key=lambda i: SPLITS.index(splits[i]) if splits[i] else -1)
    tables = [_read_rows(csvs[i], bad, splits[i]) for i in order]
    rows = pd.concat(tables, ignore_index=True)
    if rows.empty:
        raise DataFormatError(csvs[0], "no usable rows in the benchmark CSV(s)" + bad.why_empty())
    timestamps, converted = to_milliseconds(rows["timestamp"].to_numpy())
    rows["timestamp"] = timestamps
    notes = {"rows": len(rows), **timestamp_notes(converted, len(rows))}
    if HISTORY in rows.columns:
        rows, notes["history_items_added"], notes["history_disagreements"] = _use_history(rows)
    interactions = interactions_frame(
        rows["user"].tolist(), rows["item"].tolist(), rows["timestamp"], rows["rating"]
    )
    reviewed = dict.fromkeys(interactions["item"].tolist())
    meta, meta_notes = read_meta_files(metas, bad, wanted=reviewed)
    notes.update(meta_notes)
    notes["items_without_metadata"] = sum(1 for k in reviewed if k not in meta["title"])
    notes["files_by_split"] = {s or "unsplit": splits.count(s) for s in dict.fromkeys(splits)}
    presplit = None
    if use_shipped_split:
        presplit = rows["split"].astype(str).reset_index(drop=True)
        notes["split"] = "shipped train/valid/test files used as-is"
    return RawLog(
        interactions=interactions,
        items=items_frame(reviewed, meta),
        source_files=[*csvs, *metas],
        format="amazon2023-benchmark",
        has_time=True,
        presplit=presplit,
        bad_lines=bad,
        notes=notes,
    )


def _read_rows(path: Path, bad: BadLines, split: str | None) -> pd.DataFrame:
    """One CSV → columns user, item, rating (float), timestamp (int), split[, history]; bad rows removed."""
    has_header, n_fields = _sniff(path)
    if has_header:
        table = read_csv_table(path, bad, sep=",", header=True)
        require_columns(table, path, COLUMNS)
        first_line = 2
    else:
        if n_fields not in (4, 5):
            raise DataFormatError(
                path,
                f"expected 4 or 5 fields per row ({','.join(COLUMNS)}[,history]) "
                f"and no header, found {n_fields} fields",
                1,
            )
        names = COLUMNS + [HISTORY] * (n_fields == 5)
        table = read_csv_table(path, bad, sep=",", header=False, names=names)
        first_line = 1
    ts = pd.to_numeric(table["timestamp"], errors="coerce")
    rating = pd.to_numeric(table["rating"].where(table["rating"] != "", np.nan), errors="coerce")
    problems = _row_problems(table, ts, rating)
    for index, problem in problems.items():
        bad.handle(path, int(index) + first_line, problem)  # approximate when quoted fields span lines
    keep = ~table.index.isin(problems.index)
    out = pd.DataFrame(
        {
            "user": table["user_id"][keep],
            "item": table["parent_asin"][keep],
            "rating": rating[keep].astype(np.float64),
            "timestamp": ts[keep].astype(np.int64),
            "split": split or "",
        }
    )
    if HISTORY in table.columns:
        out[HISTORY] = table[HISTORY][keep]
    return out


def _row_problems(table: pd.DataFrame, ts: pd.Series, rating: pd.Series) -> pd.Series:
    """Row index → the first problem of that row (only rows that have one)."""
    checks = [
        (table["user_id"].str.strip() == "", "empty user_id"),
        (table["parent_asin"].str.strip() == "", "empty parent_asin"),
        (ts.isna() | ~np.isfinite(ts.fillna(0)), "timestamp is not a number"),
        ((ts < 0) | (ts >= 1e14), "timestamp is out of range"),
        (rating.isna() & (table["rating"] != ""), "rating is not a number"),
    ]
    problems = pd.Series(pd.NA, index=table.index, dtype=object)
    for mask, text in reversed(checks):  # reversed: the first failing check wins
        problems[mask.to_numpy()] = text
    return problems.dropna()


def _sniff(path: Path) -> tuple[bool, int]:
    """(has a header row, number of fields in the first line)."""
    check_not_empty(path)
    try:
        with open_binary(path) as fh:
            first = (
                fh.readline().decode("utf-8-sig", errors="replace").strip()
            )  # -sig: a BOM must not hide the header
    except GZIP_ERRORS as exc:
        raise DataFormatError(path, f"compressed file is truncated or corrupt ({exc})") from exc
    fields = first.split(",")
    return fields[0].strip().strip('"') == "user_id", len(fields)


def _use_history(rows: pd.DataFrame) -> tuple[pd.DataFrame, int, int]:
    """Complete and check the rows with their ``history`` column, in one pass over each user's rows in time
    order. Returns (rows with added events, number added, number of rows whose history disagrees).

    Completion: earlier items that the user's last history names but no given row holds (e.g. the train file
    was not given) become train events 1 ms apart, in history order, just before the user's first row.
    Check: each row's history must be the user's earlier distinct items, space-separated.
    """
    ordered = rows.sort_values(["user", "timestamp"], kind="stable")
    users, items = ordered["user"].tolist(), ordered["item"].tolist()
    times, histories = ordered["timestamp"].tolist(), ordered[HISTORY].tolist()
    added = {"user": [], "item": [], "timestamp": [], HISTORY: []}
    disagreements, start = 0, 0
    while start < len(users):
        end = start
        while end < len(users) and users[end] == users[start]:
            end += 1
        earlier = _missing_before(items[start:end], histories[end - 1])
        for j, item in enumerate(earlier):
            added["user"].append(users[start])
            added["item"].append(item)
            added["timestamp"].append(times[start] - len(earlier) + j)
            added[HISTORY].append(" ".join(earlier[:j]))
        seen = set(earlier)
        for i in range(start, end):
            if isinstance(histories[i], str) and histories[i] != " ".join(earlier):
                disagreements += 1
            if items[i] not in seen:
                seen.add(items[i])
                earlier.append(items[i])
        start = end
    if added["user"]:
        extra = pd.DataFrame(added).assign(rating=np.nan, split="train")
        rows = pd.concat([rows, extra[rows.columns]], ignore_index=True)
    return rows, len(added["user"]), disagreements


def _missing_before(user_items: list[str], last_history) -> list[str]:
    """Items of the user's last history that none of the user's rows holds, in history order."""
    if not isinstance(last_history, str):  # a row from a file without history
        return []
    present = set(user_items)
    return list(dict.fromkeys(item for item in last_history.split() if item not in present))
