"""The one in-memory form every reader yields, before the protocol runs.

Readers (``llm2rec/data/sources/*``) differ in what they parse; they all return a :class:`RawLog`:

* ``interactions``: a DataFrame with columns
  ``user`` (str), ``item`` (str), ``timestamp`` (int64 milliseconds, or a per-user ordinal when the source
  has no time, see ``RawLog.has_time``), ``rating`` (float64, NaN when unknown). Row order breaks ties in
  ``timestamp`` (the protocol sorts stably), so a reader without timestamps emits each user's events in order.
* ``items``: a DataFrame with column ``item`` (str, unique) and ``title`` (str, raw, not cleaned yet), plus any
  optional text columns (``description``, ``brand``, ``categories``, ...), all str.
* ``presplit``: when the source ships its own split and the user keeps it, a Series mapping each interaction
  row to ``"train"``, ``"valid"`` or ``"test"``; otherwise None.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from llm2rec.errors import DataFormatError

INTERACTION_COLUMNS = ("user", "item", "timestamp", "rating")
SPLITS = ("train", "valid", "test")


@dataclass
class BadLines:
    """Counts of input lines skipped under ``--skip-bad-lines``, by reason; raises when not allowed."""

    skip: bool = False
    counts: Counter = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)
    # Per input file: the records it held (lines, or a table's data rows: `read`), the lines skipped, the
    # first skipped line's problem; so a file that lost every line can be named (`emptied`).
    lines: Counter = field(default_factory=Counter, repr=False)
    skipped: Counter = field(default_factory=Counter, repr=False)
    first: dict = field(default_factory=dict, repr=False)
    _last: dict = field(default_factory=dict, repr=False)

    def handle(self, path: str | Path, line: int | None, problem: str, detail: str = "") -> None:
        """Raise, or count ``problem`` (the reason, the same for every such line) when skipping;
        ``detail`` (e.g. which item) goes into the message and the examples, not the count."""
        said = f"{problem} ({detail})" if detail else problem
        if not self.skip:
            raise DataFormatError(path, said + " (pass --skip-bad-lines to skip such lines)", line)
        self.counts[problem] += 1
        if len(self.examples) < 20:
            self.examples.append(f"{Path(path).name}:{line}: {said}")
        key = str(path)
        if line is not None and self._last.get(key) != line:  # a line with two problems is one line lost
            self._last[key] = line
            self.skipped[key] += 1
            self.first.setdefault(key, f"line {line}: {said}")

    def read(self, path: str | Path, records: int) -> None:
        """``records`` more lines (or table rows) read from ``path``, skipped ones included."""
        self.lines[str(path)] += records

    def emptied(self) -> list[str]:
        """The input files of which every line was skipped, each with its count and first problem:
        ``reviews.jsonl: all 120 lines skipped (first: line 1: malformed JSON)``."""
        out = []
        for key, n in self.lines.items():
            if n and self.skipped[key] >= n:
                said = f"all {n} lines skipped" if n > 1 else "its only line skipped"
                out.append(f"{Path(key).name}: {said} (first: {self.first[key]})")
        return out

    def why_empty(self) -> str:
        """``"; "`` and :meth:`emptied`'s lines, for an error saying nothing usable is left ('' if none)."""
        return "".join(f"; {said}" for said in self.emptied())

    def to_dict(self) -> dict:
        return {
            "total": int(sum(self.counts.values())),
            "by_reason": dict(self.counts),
            "examples": self.examples,
        }


@dataclass
class RawLog:
    interactions: pd.DataFrame
    items: pd.DataFrame
    source_files: list[Path]
    format: str
    has_time: bool = True
    presplit: pd.Series | None = None
    bad_lines: BadLines = field(default_factory=BadLines)
    notes: dict = field(default_factory=dict)
    """Reader-specific facts for the manifest (e.g. rows whose history disagreed with the rebuilt sequence)."""

    def __post_init__(self) -> None:
        missing = [c for c in INTERACTION_COLUMNS if c not in self.interactions.columns]
        if missing:
            raise ValueError(f"reader bug: interactions lack columns {missing}")
        if "item" not in self.items.columns or "title" not in self.items.columns:
            raise ValueError("reader bug: items need columns 'item' and 'title'")


def empty_interactions() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user": pd.Series(dtype=str),
            "item": pd.Series(dtype=str),
            "timestamp": pd.Series(dtype="int64"),
            "rating": pd.Series(dtype="float64"),
        }
    )
