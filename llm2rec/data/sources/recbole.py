"""RecBole atomic files: ``<name>.inter`` or ``<name>.{train,valid,test}.inter``, plus titles.

Inputs (files, or a directory holding one dataset's files):

* ``.inter`` with a typed header (``field:type``, tab-separated). Two shapes:

  - one interaction per row: ``user_id:token item_id:token [timestamp:float] [rating:float]``;
  - one prediction per row: ``user_id:token item_id_list:token_seq item_id:token`` (UniSRec; the train file
    holds every prefix). Each user's sequence is rebuilt from all rows (train, then valid, then test, shorter
    histories first); rows whose history does not continue the rebuilt sequence are counted in
    ``notes["history_conflicts"]``. Such files have no time, so timestamps are per-user ordinals.

* titles from ``.item`` (a ``title`` field, or any field whose name contains "title"; ``description``,
  ``brand``, ``categories`` fields are kept too) or from ``.text`` (``item_id:token text:token_seq`` with text
  "title. categories. brand.", see :func:`split_unisrec_text`).
* ``.item2index`` / ``.user2index`` (``key<TAB>index``): the ``.inter`` tokens are indices into them; the
  readers key items and users by the original key (e.g. the ASIN).

Options: ``use_shipped_split`` (keep the files' split), ``name`` (only ``<name>.*`` files, for folders holding
several datasets), ``user_field`` ("user_id"), ``item_field``
("item_id"), ``time_field`` ("timestamp"), ``rating_field`` ("rating"), ``title_field`` ("title").
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.data.schema import SPLITS, BadLines, RawLog
from llm2rec.data.sources._common import (
    check_options,
    describe_inputs,
    expand_inputs,
    interactions_log,
    items_frame,
    iter_text_lines,
    merge_row,
    ordinal_timestamps,
    parse_rating,
    parse_timestamp,
    timestamp_notes,
    to_milliseconds,
)
from llm2rec.errors import ConfigError, DataFormatError

SUFFIXES = (".inter", ".item", ".text", ".item2index", ".user2index")
OPTIONS = (
    "user_field",
    "item_field",
    "time_field",
    "rating_field",
    "title_field",
    "use_shipped_split",
    "name",
)
TEXT_FIELDS = ("description", "brand", "categories")


@dataclass
class AtomicFile:
    """A parsed atomic file: field names (types dropped) and rows of str values."""

    path: Path
    fields: list[str]
    rows: list[list[str]] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def column(self, name: str) -> int:
        return self.fields.index(name)


def _kind(path: Path) -> str | None:
    for suffix in SUFFIXES:
        if path.name.endswith(suffix):
            return suffix[1:]
    return None


def split_of(path: Path) -> str | None:
    """``Scientific.valid.inter`` → "valid"; ``ml-1m.inter`` → None."""
    parts = path.name.split(".")
    return parts[-2] if len(parts) >= 3 and parts[-2] in SPLITS else None


def read(inputs: list[Path], *, bad: BadLines, **options) -> RawLog:
    check_options("recbole", options, OPTIONS)
    opts = {
        "user_field": "user_id",
        "item_field": "item_id",
        "time_field": "timestamp",
        "rating_field": "rating",
        "title_field": "title",
        "use_shipped_split": False,
        "name": None,
        **options,
    }
    files = expand_inputs(inputs, lambda p: _kind(p) is not None)
    if opts["name"]:
        files = [f for f in files if f.name.split(".")[0] == opts["name"]]
    by_kind: dict[str, list[Path]] = defaultdict(list)
    for path in files:
        by_kind[_kind(path) or "other"].append(path)
    inters = sorted(by_kind["inter"], key=lambda p: SPLITS.index(split_of(p)) if split_of(p) else -1)
    if not inters:
        raise DataFormatError(describe_inputs(inputs), "no .inter file found")
    _check_one_dataset(inters)
    splits = [split_of(p) for p in inters]
    if opts["use_shipped_split"] and None in splits:
        raise ConfigError(
            f"{inters[splits.index(None)]} holds no split (not <name>.train|valid|test.inter); "
            "cannot keep the shipped split"
        )
    item_keys = _read_index(by_kind["item2index"], bad)
    user_keys = _read_index(by_kind["user2index"], bad)
    parsed = [_read_atomic(p, bad) for p in inters]
    list_field = f"{opts['item_field']}_list"
    if all(list_field in f.fields for f in parsed):
        log = _from_sequences(parsed, splits, opts, bad, item_keys, user_keys)
    elif not any(list_field in f.fields for f in parsed):
        log = _from_interactions(parsed, splits, opts, bad, item_keys, user_keys)
    else:
        raise DataFormatError(inters[0], f"some .inter files have {list_field!r} rows and some do not")
    items, title_notes = _read_titles(by_kind, bad, opts, log.interactions["item"], item_keys)
    log.items, log.source_files = items, files
    log.notes.update(title_notes)
    return log


def _check_one_dataset(inters: list[Path]) -> None:
    names = sorted({p.name.split(".")[0] for p in inters})
    if len(names) > 1:
        raise ConfigError(
            f".inter files of several datasets ({', '.join(names)}) in {inters[0].parent}; pass "
            "--option name=<dataset> or the files of one dataset"
        )


# --------------------------------------------------------------------------- parsing


def _read_atomic(path: Path, bad: BadLines) -> AtomicFile:
    lines = iter_text_lines(path, bad)
    header = next(lines, None)
    if header is None:
        raise DataFormatError(path, "no header line")
    bad.read(path, -1)  # the header is not a record: a file whose every record was skipped lost them all
    fields = [f.split(":", 1)[0].strip() for f in header[1].rstrip("\r\n").split("\t")]
    if not all(fields) or len(set(fields)) != len(fields):
        raise DataFormatError(
            path, f"header must be distinct tab-separated 'name:type' fields, got {fields}", header[0]
        )
    table = AtomicFile(path, fields)
    for number, text in lines:
        values = text.rstrip("\r\n").split("\t")
        if len(values) != len(fields):
            bad.handle(path, number, f"expected {len(fields)} tab-separated fields, found {len(values)}")
            continue
        table.rows.append(values)
        table.lines.append(number)
    return table


def _read_index(paths: list[Path], bad: BadLines) -> dict[str, str] | None:
    """``.item2index``/``.user2index`` files → {index token: original key}."""
    if not paths:
        return None
    mapping: dict[str, str] = {}
    for path in paths:
        for number, text in iter_text_lines(path, bad):
            parts = text.rstrip("\r\n").split("\t")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                bad.handle(path, number, "expected 'key<TAB>index'")
                continue
            mapping[parts[1].strip()] = parts[0].strip()
    return mapping


class _Keys:
    """Token → key through an optional index file; unknown tokens are bad lines."""

    def __init__(self, mapping: dict[str, str] | None, what: str):
        self.mapping, self.what = mapping, what

    def __call__(self, token: str) -> str:
        token = token.strip()
        if not token:
            raise ValueError(f"empty {self.what}")
        if self.mapping is None:
            return token
        if token not in self.mapping:
            raise ValueError(f"{self.what} {token!r} is not in the .{self.what}2index file")
        return self.mapping[token]


def _need(table: AtomicFile, name: str) -> int:
    if name not in table.fields:
        raise DataFormatError(table.path, f"missing field {name!r}: found {table.fields}", 1)
    return table.column(name)


# --------------------------------------------------------------------------- one interaction per row


def _from_interactions(tables, splits, opts, bad, item_keys, user_keys) -> RawLog:
    users, items, times, ratings, labels = [], [], [], [], []
    item_key, user_key = _Keys(item_keys, "item"), _Keys(user_keys, "user")
    has_time = all(opts["time_field"] in t.fields for t in tables)
    for table, split in zip(tables, splits):
        u, i = _need(table, opts["user_field"]), _need(table, opts["item_field"])
        t = table.column(opts["time_field"]) if has_time else None
        r = table.column(opts["rating_field"]) if opts["rating_field"] in table.fields else None
        for values, number in zip(table.rows, table.lines):
            try:
                row = (
                    user_key(values[u]),
                    item_key(values[i]),
                    parse_timestamp(values[t]) if t is not None else 0,
                    parse_rating(values[r].strip()) if r is not None else float("nan"),
                )
            except ValueError as exc:
                bad.handle(table.path, number, str(exc))
                continue
            for column, value in zip((users, items, times, ratings), row):
                column.append(value)
            labels.append(split)
    if not users:
        raise DataFormatError(tables[0].path, "no usable interaction rows" + bad.why_empty())
    notes = {"shape": "one interaction per row", "rows": len(users)}
    if has_time:
        timestamps, converted = to_milliseconds(times)
        notes.update(timestamp_notes(converted, len(times)))
    else:
        timestamps = ordinal_timestamps(users)
        notes["time"] = "no timestamp field: per-user row order"
    return _log(users, items, timestamps, ratings, labels, opts, has_time, bad, notes)


# --------------------------------------------------------------------------- one prediction per row


def _from_sequences(tables, splits, opts, bad, item_keys, user_keys) -> RawLog:
    rows_by_user: dict[str, list] = defaultdict(list)
    item_key, user_key = _Keys(item_keys, "item"), _Keys(user_keys, "user")
    n_rows = 0
    for rank, (table, split) in enumerate(zip(tables, splits)):
        u, h = _need(table, opts["user_field"]), _need(table, f"{opts['item_field']}_list")
        t = _need(table, opts["item_field"])
        for values, number in zip(table.rows, table.lines):
            try:
                history = [item_key(tok) for tok in values[h].split()]
                row = (rank, len(history), number, history, item_key(values[t]), split or "train")
                rows_by_user[user_key(values[u])].append(row)
                n_rows += 1
            except ValueError as exc:
                bad.handle(table.path, number, str(exc))
    if not rows_by_user:
        raise DataFormatError(tables[0].path, "no usable rows" + bad.why_empty())
    users, items, labels, conflicts = [], [], [], 0
    for user, rows in rows_by_user.items():
        seq, seq_labels = [], []
        for *_, history, target, split in sorted(rows, key=lambda r: r[:3]):
            prepend, append_from, agreed = merge_row(seq, history)
            conflicts += not agreed
            seq[:0], seq_labels[:0] = history[:prepend], ["train"] * prepend
            seq.extend(history[append_from:])
            # history-only items: train, or (after a gap) the split before them, so labels never go backwards
            seq_labels.extend([seq_labels[-1] if seq_labels else "train"] * (len(history) - append_from))
            seq.append(target)
            seq_labels.append(split)
        users.extend([user] * len(seq))
        items.extend(seq)
        labels.extend(seq_labels)
    notes = {
        "shape": "one prediction per row (history list + target); sequences rebuilt",
        "rows": n_rows,
        "users": len(rows_by_user),
        "history_conflicts": conflicts,
        "time": "no timestamps: per-user ordinals",
    }
    ratings = np.full(len(users), np.nan)
    return _log(users, items, ordinal_timestamps(users), ratings, labels, opts, False, bad, notes)


def _log(users, items, timestamps, ratings, labels, opts, has_time, bad, notes) -> RawLog:
    presplit = None
    if opts["use_shipped_split"]:
        presplit = pd.Series(labels, dtype=str)
        notes["split"] = "shipped train/valid/test files used as-is"
    return interactions_log("recbole", users, items, timestamps, ratings, has_time=has_time,
                            presplit=presplit, bad=bad, notes=notes)  # fmt: skip


# --------------------------------------------------------------------------- titles


def _read_titles(by_kind, bad, opts, interaction_items: pd.Series, item_keys) -> tuple[pd.DataFrame, dict]:
    fields: dict[str, dict[str, str]] = {"title": {}}
    known = set(interaction_items)

    def key_of(token: str) -> str:
        token = token.strip()  # .item/.text may use either the original key or the index token
        if token in known or item_keys is None:
            return token
        return item_keys.get(token, token)

    for path in by_kind["item"]:
        table = _read_atomic(path, bad)
        _titles_from_item_file(table, opts, key_of, fields)
    texts: dict[str, str] = {}
    for path in by_kind["text"]:
        table = _read_atomic(path, bad)
        k, x = _need(table, opts["item_field"]), _need(table, "text")
        for values in table.rows:
            texts.setdefault(key_of(values[k]), values[x])
    for name, by_key in split_unisrec_text(texts).items():
        fields.setdefault(name, {})
        for key, value in by_key.items():
            fields[name].setdefault(key, value)
    if not by_kind["item"] and not by_kind["text"]:
        raise DataFormatError(
            describe_inputs(by_kind["inter"]),
            "no titles: add the dataset's .item file (with a title field) or .text file (with .item2index)",
        )
    ordered = dict.fromkeys(interaction_items.tolist())
    missing = sum(1 for k in ordered if not fields["title"].get(k))
    return items_frame(ordered, fields), {"items_without_title": missing}


def _titles_from_item_file(table: AtomicFile, opts: dict, key_of, fields: dict) -> None:
    k = _need(table, opts["item_field"])
    candidates = [opts["title_field"]] + [f for f in table.fields if "title" in f.lower()]
    title_field = next((f for f in candidates if f in table.fields), None)
    if title_field is None:
        raise DataFormatError(
            table.path, f"no title field (expected {opts['title_field']!r}); found {table.fields}"
        )
    columns = {"title": table.column(title_field)}
    columns.update({name: table.column(name) for name in TEXT_FIELDS if name in table.fields})
    for values in table.rows:
        key = key_of(values[k])
        for name, index in columns.items():
            fields.setdefault(name, {}).setdefault(key, values[index])


def split_unisrec_text(texts: dict[str, str]) -> dict[str, dict[str, str]]:
    """UniSRec ``.text`` values "title. categories. brand." → {"title": ..., "categories": ..., "brand": ...}.

    Titles themselves contain ". " ("24 Oz. Sprayer Bottles"), and so do brands ("K.S. Choi Corp."), so the
    category segment is found by its start: the first two words shared by most category segments (e.g.
    "Industrial &"), taking the last occurrence. Without such a common start: cut at the last two ". ".
    """
    stripped = {key: _without_final_period(text) for key, text in texts.items()}
    anchor = _category_anchor(stripped.values())
    out: dict[str, dict[str, str]] = {"title": {}, "categories": {}, "brand": {}}
    for key, text in stripped.items():
        cut = text.rfind(f". {anchor}") if anchor else -1
        if cut > 0:
            title, (categories, _, brand) = text[:cut], text[cut + 2 :].partition(". ")
        elif text.count(". ") >= 2:
            title, categories, brand = text.rsplit(". ", 2)
        else:
            title, categories, brand = text, "", ""
        out["title"][key], out["categories"][key], out["brand"][key] = title, categories, brand
    return out


def _without_final_period(text: str) -> str:
    text = text.strip()
    return text[:-1] if text.endswith(".") else text


def _category_anchor(texts) -> str | None:
    starts = Counter()
    total = 0
    for text in texts:
        if text.count(". ") >= 2:
            total += 1
            starts[" ".join(text.rsplit(". ", 2)[1].split()[:2])] += 1
    if not starts:
        return None
    anchor, count = starts.most_common(1)[0]
    return anchor if anchor and count * 2 >= total else None
