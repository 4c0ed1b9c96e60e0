"""Helpers every reader shares: finding input files, reading lines and tables safely, timestamp units.

Every failure here becomes a :class:`DataFormatError` naming the file (and line when known), or is skipped and
counted through :class:`BadLines` when the user passed ``--skip-bad-lines``.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import re
import warnings
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.data.schema import BadLines, RawLog
from llm2rec.errors import ConfigError, DataFormatError

# Amazon-scale timestamps: anything below this is seconds (1e11 s is the year 5138; 1e11 ms is 1973).
SECONDS_BELOW = 10**11
# Beyond the year 5000 in ms: surely not a timestamp, and close enough to int64 limits to be dangerous.
MAX_TIMESTAMP_MS = 10**14

# A truncated or corrupt gzip stream surfaces as any of these while reading.
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
# What ast.literal_eval / json.loads may raise on hostile input.
LITERAL_ERRORS = (ValueError, SyntaxError, TypeError, MemoryError, RecursionError)


def strip_compression(name: str) -> str:
    return name[:-3] if name.endswith(".gz") else name


def expand_inputs(inputs: Iterable[Path], accept: Callable[[Path], bool]) -> list[Path]:
    """Files as given (in the given order), directories replaced by their accepted files (recursively, sorted)."""
    files: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            files.extend(p for p in sorted(path.rglob("*")) if p.is_file() and accept(p))
        elif path.is_file():
            files.append(path)
        else:
            raise FileNotFoundError(f"input not found: {path}")
    return files


def check_not_empty(path: Path) -> None:
    if path.stat().st_size == 0:
        raise DataFormatError(path, "file is empty")


def open_binary(path: Path):
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


def iter_text_lines(path: Path, bad: BadLines) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for each non-blank line, decoded as UTF-8.

    Undecodable lines go to ``bad``; a truncated .gz ends the file with an error (or, when skipping,
    with one counted problem, keeping the lines read so far).
    """
    check_not_empty(path)
    number = blank = 0
    with open_binary(path) as fh:
        try:
            for number, raw in enumerate(fh, start=1):  # noqa: B007 - number is used after the loop
                try:
                    text = raw.decode("utf-8-sig" if number == 1 else "utf-8")  # -sig: drop a BOM
                except UnicodeDecodeError as exc:
                    bad.handle(path, number, f"not valid UTF-8 (byte {exc.start})")
                    continue
                if text.strip():
                    yield number, text
                else:
                    blank += 1
        except GZIP_ERRORS as exc:
            bad.handle(path, number + 1, f"compressed file is truncated or corrupt ({exc})")
            number += 1  # the line it could not read counts as one, skipped
        finally:
            bad.read(path, number - blank)


def parse_literal_list(text: str) -> list:
    """A Python-literal list such as ``"['a', 'b']"`` (D3/BIGRec CSVs); never ``eval``."""
    text = text.strip()
    try:  # JSON is ~10x faster and covers id and timestamp lists; Python-quoted strings fall through
        value = json.loads(text)
    except ValueError:
        value = ast.literal_eval(text)
    if isinstance(value, tuple):
        value = list(value)
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return value


# --------------------------------------------------------------------------- tables


_PANDAS_LINE = re.compile(r"line (\d+)")


def read_csv_table(
    path: Path, bad: BadLines, *, sep: str | None = None, header: bool = True, names: list[str] | None = None
) -> pd.DataFrame:
    """Read a delimited text file (optionally .gz) into an all-``str`` DataFrame.

    ``sep=None`` guesses "," or tab from the file name. Empty fields stay ``""``. Rows with the wrong number of
    fields and undecodable bytes are errors naming the line, or skipped and counted.
    """
    check_not_empty(path)
    if sep is None:
        sep = "\t" if ".tsv" in path.name or ".tab" in path.name else ","
    kwargs = dict(
        sep=sep,
        dtype=str,
        encoding="utf-8-sig",  # a leading BOM (Windows tools) must not become part of the first column name
        keep_default_na=False,
        na_filter=False,
        header=0 if header else None,
        names=names,
        quoting=csv.QUOTE_MINIMAL,
        index_col=False,  # never turn a surplus first field into the index
    )
    skipped = bad.skipped[str(path)]
    try:
        df = _read_csv_reporting_bad_rows(path, bad, path, kwargs)
    except UnicodeDecodeError:
        df = _read_csv_reporting_bad_rows(path, bad, _utf8_lines_only(path, bad), kwargs)
    bad.read(path, len(df) + bad.skipped[str(path)] - skipped)  # the rows kept and the rows skipped
    return df


def _read_csv_reporting_bad_rows(path: Path, bad: BadLines, source, kwargs: dict) -> pd.DataFrame:
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            df = pd.read_csv(source, on_bad_lines="warn" if bad.skip else "error", **kwargs)
    except pd.errors.EmptyDataError as exc:
        raise DataFormatError(path, "file holds no rows") from exc
    except pd.errors.ParserError as exc:
        line = _PANDAS_LINE.search(str(exc))
        raise DataFormatError(
            path, f"malformed row: {_one_line(exc)}", int(line.group(1)) if line else None
        ) from exc
    except GZIP_ERRORS as exc:
        raise DataFormatError(path, f"compressed file is truncated or corrupt ({exc})") from exc
    except (csv.Error, ValueError, OverflowError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            raise
        raise DataFormatError(path, f"cannot parse as a table: {_one_line(exc)}") from exc
    for warning in caught:
        if "does not match length of data" in str(warning.message):
            raise DataFormatError(path, "the rows have more fields than the header row", 2)
        for match in _PANDAS_LINE.finditer(str(warning.message)):
            bad.handle(path, int(match.group(1)), "row has the wrong number of fields")
    return df


def _utf8_lines_only(path: Path, bad: BadLines) -> io.StringIO:
    """The file's text without its undecodable lines (each one reported to ``bad``)."""
    lines = []
    number = 0
    with open_binary(path) as fh:
        try:
            for number, raw in enumerate(fh, start=1):  # noqa: B007
                try:
                    lines.append(raw.decode("utf-8-sig" if number == 1 else "utf-8"))
                except UnicodeDecodeError as exc:
                    bad.handle(path, number, f"not valid UTF-8 (byte {exc.start})")
        except GZIP_ERRORS as exc:
            bad.handle(path, number + 1, f"compressed file is truncated or corrupt ({exc})")
    if not lines:
        raise DataFormatError(path, "no readable lines")
    return io.StringIO("".join(lines))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


def require_columns(df: pd.DataFrame, path: Path, expected: Iterable[str]) -> None:
    expected = list(expected)
    missing = [c for c in expected if c not in df.columns]
    if missing:
        raise DataFormatError(
            path, f"missing column(s) {missing}: expected {expected}, found {[str(c) for c in df.columns]}"
        )


def read_parquet_table(path: Path) -> pd.DataFrame:
    check_not_empty(path)
    try:
        return pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises several unrelated types for a corrupt file
        raise DataFormatError(path, f"cannot read as Parquet: {_one_line(exc)}") from exc


# --------------------------------------------------------------------------- timestamps


def to_milliseconds(values: np.ndarray, unit: str = "auto") -> tuple[np.ndarray, int]:
    """Timestamps → int64 ms. ``unit="auto"`` treats each value below 1e11 as seconds.

    Returns the converted array and how many values were converted from seconds.
    """
    values = np.asarray(values, dtype=np.int64)
    if unit == "ms":
        return values, 0
    if unit == "s":
        return values * 1000, len(values)
    in_seconds = values < SECONDS_BELOW
    return np.where(in_seconds, values * 1000, values), int(in_seconds.sum())


def parse_timestamp(value) -> int:
    """One timestamp from JSON/CSV (int, float or numeric string) → int; ValueError when unusable."""
    if isinstance(value, bool):
        raise ValueError("timestamp is a boolean")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if text.isdigit() else float(text)
        except ValueError:
            raise ValueError(f"timestamp {text[:40]!r} is not a number") from None
    if isinstance(value, float):
        if not np.isfinite(value):
            raise ValueError("timestamp is not finite")
        value = int(value)
    if not isinstance(value, int):
        raise ValueError(f"timestamp is a {type(value).__name__}")
    if not 0 <= value < MAX_TIMESTAMP_MS:
        raise ValueError(f"timestamp {value} is out of range")
    return value


def parse_rating(value) -> float:
    """A rating (number, numeric string, null/empty → NaN); ValueError when not a number."""
    if value is None or value == "":
        return float("nan")
    if isinstance(value, bool):
        raise ValueError("rating is a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"rating {value[:40]!r} is not a number") from None
    raise ValueError(f"rating is a {type(value).__name__}")


def timestamp_notes(converted: int, total: int) -> dict:
    if not converted:
        return {}
    return {
        "timestamps_converted_from_seconds": converted,
        "timestamp_note": f"{converted:,} of {total:,} timestamps were in seconds; converted to milliseconds",
    }


# --------------------------------------------------------------------------- assembling


# Interaction logs of recommender data sets fall in this window; a timestamp outside it after conversion
# to milliseconds means a wrong unit (seconds read as ms land in 1970, ms read as s after 2100).
PLAUSIBLE_MS = (631_152_000_000, 4_102_444_800_000)  # 1990-01-01, 2100-01-01 (UTC)


def check_plausible_times(ms: np.ndarray, path: Path, what: str) -> None:
    """Refuse timestamps outside 1990-2100 (in ms), naming ``what`` (the column and its unit)."""
    if len(ms) == 0:
        return
    lo, hi = int(ms.min()), int(ms.max())
    if lo < PLAUSIBLE_MS[0] or hi >= PLAUSIBLE_MS[1]:
        span = f"{_date(lo)} .. {_date(hi)}"
        raise DataFormatError(
            path, f"{what}: timestamps fall in {span}, outside 1990-2100: is the unit right? "
            "(--option time_unit=s or ms; time_col=null for a log without time)",
        )  # fmt: skip


def _date(ms: int) -> str:
    import datetime

    try:
        return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)  # noqa: UP017 (3.10).date().isoformat()
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"


def iter_json_objects(path: Path, bad: BadLines, what: str = "a line") -> Iterator[tuple[int, dict]]:
    """Yield ``(line_number, record)`` for each JSON-object line; malformed ones go to ``bad``."""
    loads = json.loads
    for number, text in iter_text_lines(path, bad):
        try:
            record = loads(text)
        except LITERAL_ERRORS:
            bad.handle(path, number, "malformed JSON")
            continue
        if not isinstance(record, dict):
            bad.handle(path, number, f"{what} must be a JSON object")
            continue
        yield number, record


def interactions_log(fmt: str, users, items, timestamps, ratings, *, has_time: bool, presplit,
                     bad: BadLines, notes: dict) -> RawLog:  # fmt: skip
    """A :class:`RawLog` of the interactions alone; the reader fills in ``items`` and ``source_files``."""
    return RawLog(
        interactions=interactions_frame(users, items, timestamps, ratings),
        items=items_frame([], {}),
        source_files=[],
        format=fmt,
        has_time=has_time,
        presplit=presplit,
        bad_lines=bad,
        notes=notes,
    )


def interactions_frame(users: list, items: list, timestamps, ratings) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": pd.Series(users, dtype=str),
            "item": pd.Series(items, dtype=str),
            "timestamp": np.asarray(timestamps, dtype=np.int64),
            "rating": np.asarray(ratings, dtype=np.float64),
        }
    )


def items_frame(item_keys: Iterable[str], fields: dict[str, dict[str, str]]) -> pd.DataFrame:
    """One row per key (in order); ``fields[name][key]`` fills column ``name`` ("" when absent)."""
    keys = list(dict.fromkeys(item_keys))
    data = {"item": pd.Series(keys, dtype=str)}
    for name, by_key in fields.items():
        data[name] = pd.Series([by_key.get(k, "") for k in keys], dtype=str)
    if "title" not in data:
        data["title"] = pd.Series([""] * len(keys), dtype=str)
    return pd.DataFrame(data)


def ordinal_timestamps(users: list) -> np.ndarray:
    """0, 1, 2... within each user, in row order: for sources without time."""
    return pd.Series(users).groupby(pd.Series(users), sort=False).cumcount().to_numpy(np.int64)


def check_options(fmt: str, options: dict, allowed: tuple[str, ...] = ()) -> None:
    """Reject reader options this format does not know (a typo must not be silently ignored)."""
    if options.get("use_shipped_split") and "use_shipped_split" not in allowed:
        raise ConfigError(f"format {fmt!r} ships no train/valid/test split; use --split loo or temporal")
    unknown = sorted(set(options) - set(allowed) - {"use_shipped_split"})
    if unknown:
        raise ConfigError(
            f"format {fmt!r} has no option(s) {unknown}; accepted: {', '.join(allowed) if allowed else 'none'}"
        )


def describe_inputs(inputs: Iterable[Path]) -> str:
    return ", ".join(str(p) for p in inputs) or "(no input)"


def merge_row(sequence: list, history: list) -> tuple[int, int, bool]:
    """How one "history → target" row extends a user's rebuilt ``sequence`` (before its target is appended).

    Returns ``(prepend, append_from, agreed)``: the caller puts ``history[:prepend]`` before the sequence and
    ``history[append_from:]`` after it, then the target. ``agreed`` is False when the history does not end the
    sequence (a gap or a conflict); then the history is appended after its longest overlap with the sequence.
    """
    n, m = len(history), len(sequence)
    if m == 0:
        return 0, 0, True
    if n == 0:
        return 0, 0, False
    if n <= m and sequence[m - n :] == history:
        return 0, n, True
    if n > m and history[n - m :] == sequence:
        return n - m, n, True  # the row knows earlier items than the rows seen so far
    for k in range(min(n, m) - 1, 0, -1):
        if sequence[m - k :] == history[:k]:
            return 0, k, False
    return 0, 0, False
