"""Generic tables: an interactions file and an items file, with configurable column names.

* interactions: CSV, TSV or Parquet (``.gz`` allowed for text files) with a header row;
* items: CSV, TSV, Parquet or JSON Lines with the item column, a title column and optional text columns.

Which input is the items file: option ``items_path``, else the one input whose file name contains "item"
(a directory contributes its ``.csv``/``.tsv``/``.parquet``/``.jsonl`` files).

Options (defaults): ``user_col`` ("user_id"), ``item_col`` ("item_id"), ``time_col`` ("timestamp"; ``null``
for logs without time: per-user row order then), ``rating_col`` (None), ``time_unit`` ("auto": values below
1e11 are seconds; "s"; "ms"; date strings such as "2021-08-11 00:56:54" are parsed too), ``title_col``
("title"), ``text_cols`` (default: whichever of description, brand, categories, features, main_category exist).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.data.schema import BadLines, RawLog
from llm2rec.data.sources._common import (
    MAX_TIMESTAMP_MS,
    check_options,
    check_plausible_times,
    describe_inputs,
    expand_inputs,
    interactions_frame,
    iter_json_objects,
    ordinal_timestamps,
    read_csv_table,
    read_parquet_table,
    require_columns,
    strip_compression,
    timestamp_notes,
    to_milliseconds,
)
from llm2rec.errors import ConfigError, DataFormatError

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".jsonl", ".json")
DEFAULT_TEXT_COLS = ("description", "brand", "categories", "features", "main_category")
_UNSET = object()


def _accept(path: Path) -> bool:
    return strip_compression(path.name).endswith(TABLE_SUFFIXES)


def read(
    inputs: list[Path],
    *,
    bad: BadLines,
    user_col: str = "user_id",
    item_col: str = "item_id",
    time_col: str | None = _UNSET,
    rating_col: str | None = None,
    time_unit: str = "auto",
    title_col: str = "title",
    text_cols: list[str] | str | None = None,
    items_path: str | Path | None = None,
    **options,
) -> RawLog:
    check_options("generic", options)
    if time_unit not in ("auto", "s", "ms"):
        raise ConfigError(f"time_unit must be auto, s or ms, got {time_unit!r}")
    interactions_path, items_file = _pick_files(inputs, items_path)
    explicit_time = time_col is not _UNSET
    time_col = "timestamp" if time_col is _UNSET else time_col
    table = _read_any(interactions_path, bad)
    wanted = [user_col, item_col] + [c for c in (time_col, rating_col) if c]
    if time_col and time_col not in table.columns and not explicit_time:
        raise DataFormatError(
            interactions_path,
            f"no {time_col!r} column (found {list(table.columns)}); pass "
            "--option time_col=<name>, or time_col=null for logs without time",
        )
    require_columns(table, interactions_path, wanted)
    log = _interactions(table, interactions_path, bad, user_col, item_col, time_col, rating_col, time_unit)
    items, notes = _items(items_file, bad, item_col, title_col, text_cols, log.interactions["item"])
    log.items, log.source_files = items, [interactions_path, items_file]
    log.notes.update(notes)
    return log


def _pick_files(inputs: list[Path], items_path) -> tuple[Path, Path]:
    files = expand_inputs(inputs, _accept)
    if items_path is not None:
        items_file = Path(items_path)
        if not items_file.is_file():
            raise FileNotFoundError(f"items file not found: {items_file}")
        others = [f for f in files if f.resolve() != items_file.resolve()]
    else:
        named = [f for f in files if "item" in f.name.lower()]
        if len(named) != 1:
            raise ConfigError(
                f"cannot tell the items file among {describe_inputs(files)}: pass "
                "--option items_path=<file> (otherwise the one file named *item*)"
            )
        items_file, others = named[0], [f for f in files if f != named[0]]
    if len(others) != 1:
        raise ConfigError(
            f"expected one interactions file besides the items file {items_file}, got "
            f"{describe_inputs(others) if others else 'none'}"
        )
    return others[0], items_file


def _read_any(path: Path, bad: BadLines) -> pd.DataFrame:
    name = strip_compression(path.name)
    if name.endswith(".parquet"):
        table = read_parquet_table(path)
        bad.read(path, len(table))  # its rows, which the interaction checks may skip
        return table
    if name.endswith((".jsonl", ".json")):
        return _read_jsonl(path, bad)
    return read_csv_table(path, bad, sep="\t" if name.endswith((".tsv", ".tab", ".txt")) else ",")


def _read_jsonl(path: Path, bad: BadLines) -> pd.DataFrame:
    records = []
    for _, record in iter_json_objects(path, bad):
        records.append(record)
    if not records:
        raise DataFormatError(path, "no usable JSON lines" + bad.why_empty())
    return pd.DataFrame.from_records(records)


def _as_text(column: pd.Series) -> pd.Series:
    """Any column → str, missing values → "" (Parquet and JSON give ints, floats, None)."""
    if pd.api.types.is_string_dtype(column) and not column.isna().any():
        return column.astype(str)  # the common case (CSV): already all str

    def one(v) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        if isinstance(v, float) and v.is_integer():
            return str(int(v))  # an int column with gaps comes back as float
        if isinstance(v, (list, tuple, np.ndarray)):
            return " ".join(one(x) for x in v)
        return str(v)

    return pd.Series([one(v) for v in column], index=column.index, dtype=str)


def _interactions(table, path, bad, user_col, item_col, time_col, rating_col, time_unit) -> RawLog:
    first_line = 2 if not strip_compression(path.name).endswith(".parquet") else 1
    users, items = _as_text(table[user_col]).str.strip(), _as_text(table[item_col]).str.strip()
    problems = pd.Series(pd.NA, index=table.index, dtype=object)
    notes: dict = {"rows": len(table)}
    if time_col:
        ms, time_problems, time_notes = _timestamps(table[time_col], time_unit)
        problems[time_problems.notna().to_numpy()] = time_problems.dropna()
        notes.update(time_notes)
    ratings = pd.Series(np.nan, index=table.index)
    if rating_col:
        ratings = pd.to_numeric(_as_text(table[rating_col]).replace("", np.nan), errors="coerce")
        problems[(ratings.isna() & (_as_text(table[rating_col]) != "")).to_numpy()] = "rating is not a number"
    problems[(items == "").to_numpy()] = f"empty {item_col}"
    problems[(users == "").to_numpy()] = f"empty {user_col}"
    for index, problem in problems.dropna().items():
        bad.handle(path, int(index) + first_line, problem)
    keep = problems.isna().to_numpy()
    if not keep.any():
        raise DataFormatError(path, "no usable interaction rows" + bad.why_empty())
    users, items, ratings = users[keep].tolist(), items[keep].tolist(), ratings[keep].to_numpy()
    timestamps = ms[keep] if time_col else ordinal_timestamps(users)
    if time_col:
        check_plausible_times(timestamps, path, f"column {time_col!r} read with time_unit={time_unit}")
    if not time_col:
        notes["time"] = "no time column: per-user row order"
    return RawLog(
        interactions=interactions_frame(users, items, timestamps, ratings),
        items=pd.DataFrame({"item": [], "title": []}),
        source_files=[],
        format="generic",
        has_time=bool(time_col),
        bad_lines=bad,
        notes=notes,
    )


def _timestamps(column: pd.Series, unit: str) -> tuple[np.ndarray, pd.Series, dict]:
    """(int64 ms with 0 where unusable, problem per row or NA, notes)."""
    if pd.api.types.is_datetime64_any_dtype(column):
        if getattr(column.dt, "tz", None) is not None:
            column = column.dt.tz_convert(None)
        ms = column.astype("datetime64[ms]").astype("int64").to_numpy()
        return ms, pd.Series(np.where(column.isna(), "missing timestamp", None), index=column.index), {}
    text = _as_text(column).str.strip()
    numeric = pd.to_numeric(text.replace("", np.nan), errors="coerce")
    if numeric.notna().sum() == 0 and (text != "").any():
        return _date_strings(text)
    bad_mask = (
        numeric.isna() | (numeric < 0) | (numeric >= MAX_TIMESTAMP_MS) | ~np.isfinite(numeric.fillna(0))
    )
    values = numeric.where(~bad_mask, 0).astype(np.int64).to_numpy()
    ms, converted = to_milliseconds(values, unit)
    problems = pd.Series(np.where(bad_mask, "timestamp is not a number in range", None), index=column.index)
    return ms, problems, timestamp_notes(converted if unit == "auto" else 0, len(values))


def _date_strings(text: pd.Series) -> tuple[np.ndarray, pd.Series, dict]:
    parsed = pd.to_datetime(text, errors="coerce", utc=True, format="mixed")
    ms = parsed.dt.tz_convert(None).astype("datetime64[ms]").astype("int64").to_numpy()
    problems = pd.Series(np.where(parsed.isna(), "timestamp is not a date or number", None), index=text.index)
    return np.where(parsed.isna(), 0, ms), problems, {"time": "date strings parsed as UTC"}


def _drop_non_text_titles(table: pd.DataFrame, keys: pd.Series, title_col: str, path: Path, bad: BadLines):
    """A title that is a mapping, a number or a boolean (JSON, Parquet) is a bad row, not its repr."""
    titles = table[title_col]
    if pd.api.types.is_string_dtype(titles) and titles.map(lambda v: v is None or isinstance(v, str)).all():
        return table, keys
    wrong = titles.map(
        lambda v: not (v is None or isinstance(v, str) or (isinstance(v, float) and np.isnan(v)))
    )
    for row in np.flatnonzero(wrong.to_numpy()):
        value = titles.iloc[row]
        bad.handle(
            path,
            int(row) + 1,
            f"the title must be text, not {type(value).__name__}",
            f"item {keys.iloc[row]}",
        )
    keep = ~wrong.to_numpy()
    return table[keep], keys[keep]


def _items(path: Path, bad: BadLines, item_col: str, title_col: str, text_cols, used: pd.Series):
    table = _read_any(path, bad)
    if isinstance(text_cols, str):
        text_cols = [c.strip() for c in text_cols.split(",") if c.strip()]
    if text_cols is None:
        text_cols = [c for c in DEFAULT_TEXT_COLS if c in table.columns]
    require_columns(table, path, [item_col, title_col, *text_cols])
    keys = _as_text(table[item_col]).str.strip()
    table, keys = _drop_non_text_titles(table, keys, title_col, path, bad)
    out = pd.DataFrame({"item": keys, "title": _as_text(table[title_col])})
    for name in text_cols:
        out[name] = _as_text(table[name])
    out = out[out["item"] != ""]
    duplicates = int(out["item"].duplicated().sum())
    out = out.drop_duplicates("item", keep="first")
    used_keys = pd.Index(pd.unique(used))
    known = out.set_index("item").reindex(used_keys).fillna("").rename_axis("item").reset_index()
    notes = {"items_in_file": len(out), "items_without_title": int((known["title"] == "").sum())}
    if duplicates:
        notes["item_duplicates_ignored"] = duplicates
    return known.astype(str), notes
