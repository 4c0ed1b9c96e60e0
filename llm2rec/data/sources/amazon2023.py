"""Amazon Reviews 2023 raw files: ``<Category>.jsonl[.gz]`` reviews + ``meta_<Category>.jsonl[.gz]`` metadata.

Inputs: files or directories; in a directory every ``*.jsonl``/``*.jsonl.gz`` is taken, files whose name starts
with ``meta_`` as metadata and the others as reviews (several categories may be combined).

* Item key ``parent_asin`` (``asin`` when absent, as in the 2018 files); user key ``user_id`` (or ``reviewerID``).
* Timestamps: ``timestamp``, ``sort_timestamp``, ``sortTimestamp`` (or 2018's ``unixReviewTime``). Values
  below 1e11 are taken as seconds and converted to milliseconds; the count is in ``notes``.
* Items: every reviewed item, with its metadata title (raw) and text fields ``description`` (list joined),
  ``features`` (list joined), ``brand`` (from ``store``), ``categories`` (list joined with " > "),
  ``main_category``. Reviewed items without metadata keep ``title=""`` (the protocol drops and counts them).

Files are streamed line by line and turned into one DataFrame at the end: about 2-4 s per million reviews.
"""

from __future__ import annotations

import json
from pathlib import Path

from llm2rec.data.schema import BadLines, RawLog
from llm2rec.data.sources._common import (
    LITERAL_ERRORS,
    MAX_TIMESTAMP_MS,
    SECONDS_BELOW,
    check_options,
    describe_inputs,
    expand_inputs,
    interactions_frame,
    items_frame,
    iter_json_objects,
    iter_text_lines,
    parse_rating,
    parse_timestamp,
    strip_compression,
    timestamp_notes,
    to_milliseconds,
)
from llm2rec.errors import DataFormatError

USER_KEYS = ("user_id", "reviewerID")
ITEM_KEYS = ("parent_asin", "asin")
TIME_KEYS = ("timestamp", "sort_timestamp", "sortTimestamp", "unixReviewTime")
RATING_KEYS = ("rating", "overall")
META_FIELDS = ("title", "description", "features", "brand", "categories", "main_category")


def is_jsonl(path: Path) -> bool:
    return strip_compression(path.name).endswith((".jsonl", ".json"))


def is_meta(path: Path) -> bool:
    return path.name.startswith("meta_")


def split_inputs(inputs: list[Path]) -> tuple[list[Path], list[Path]]:
    """(review files, meta files) among the inputs."""
    files = expand_inputs(inputs, is_jsonl)
    return [f for f in files if not is_meta(f)], [f for f in files if is_meta(f)]


def read(inputs: list[Path], *, bad: BadLines, **options) -> RawLog:
    check_options("amazon2023", options)
    reviews, metas = split_inputs(inputs)
    if not reviews:
        raise DataFormatError(
            describe_inputs(inputs), "no review file found (expected <Category>.jsonl[.gz])"
        )
    if not metas:
        raise DataFormatError(
            describe_inputs(inputs), "no metadata file found: titles come from meta_<Category>.jsonl[.gz]"
        )
    users, items, times, ratings = [], [], [], []
    for path in reviews:
        read_reviews(path, bad, users, items, times, ratings)
    if not users:
        raise DataFormatError(reviews[0], "no usable review in the review file(s)" + bad.why_empty())
    timestamps, converted = to_milliseconds(times)
    interactions = interactions_frame(users, items, timestamps, ratings)
    reviewed = dict.fromkeys(items)
    meta, meta_notes = read_meta_files(metas, bad, wanted=reviewed)
    notes = {"reviews": len(users), **meta_notes, **timestamp_notes(converted, len(users))}
    notes["items_without_metadata"] = sum(1 for k in reviewed if k not in meta["title"])
    return RawLog(
        interactions=interactions,
        items=items_frame(reviewed, meta),
        source_files=reviews + metas,
        format="amazon2023",
        has_time=True,
        bad_lines=bad,
        notes=notes,
    )


def read_reviews(path: Path, bad: BadLines, users: list, items: list, times: list, ratings: list) -> None:
    """Append each review's (user, item, timestamp, rating) to the lists; bad lines go to ``bad``."""
    for number, record in iter_json_objects(path, bad, "a review line"):
        if _is_plain_2023_review(record):  # fast path: the released files' exact field names and types
            users.append(record["user_id"])
            items.append(record["parent_asin"])
            times.append(record["timestamp"])
            ratings.append(float(record["rating"]))
            continue
        try:
            user = _key(record, USER_KEYS)
            item = _key(record, ITEM_KEYS)
            when = parse_timestamp(_first(record, TIME_KEYS))
            rating = parse_rating(_first(record, RATING_KEYS, required=False))
        except (KeyError, ValueError) as exc:
            bad.handle(path, number, exc.args[0] if exc.args else str(exc))
            continue
        users.append(user)
        items.append(item)
        times.append(when)
        ratings.append(rating)


def _is_plain_2023_review(record: dict) -> bool:
    user, item = record.get("user_id"), record.get("parent_asin")
    when, rating = record.get("timestamp"), record.get("rating")
    return (
        type(user) is str
        and user != ""
        and type(item) is str
        and item != ""
        and type(when) is int
        and SECONDS_BELOW <= when < MAX_TIMESTAMP_MS
        and type(rating) in (float, int)
    )


def read_meta_files(paths: list[Path], bad: BadLines, wanted: dict | None = None) -> tuple[dict, dict]:
    """Metadata of the items in ``wanted`` (all items when None): ``{field: {item: text}}`` and notes."""
    fields: dict[str, dict[str, str]] = {name: {} for name in META_FIELDS}
    records = duplicates = 0
    for path in paths:
        for number, text in iter_text_lines(path, bad):
            record = _meta_record(path, number, text, bad)
            if record is None:
                continue
            records += 1
            key = record["parent_asin"]
            if wanted is not None and key not in wanted:
                continue
            if key in fields["title"]:
                duplicates += 1  # keep the first record, as for duplicate reviews
                continue
            for name in META_FIELDS:
                fields[name][key] = record[name]
    notes = {"meta_records": records}
    if duplicates:
        notes["meta_duplicates_ignored"] = duplicates
    return fields, notes


def _meta_record(path: Path, number: int, text: str, bad: BadLines) -> dict | None:
    try:
        record = json.loads(text)
    except LITERAL_ERRORS:
        bad.handle(path, number, "malformed JSON")
        return None
    if not isinstance(record, dict):
        bad.handle(path, number, "a metadata line must be a JSON object")
        return None
    try:
        key = _key(record, ITEM_KEYS)
    except KeyError as exc:
        bad.handle(path, number, exc.args[0])
        return None
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        bad.handle(path, number, f"the title must be text, not {type(title).__name__}", f"item {key}")
        return None
    return {
        "parent_asin": key,
        "title": _text(record.get("title")),
        "description": _text(record.get("description")),
        "features": _text(record.get("features")),
        "brand": _text(record.get("store", record.get("brand"))),
        "categories": _text(record.get("categories"), sep=" > "),
        "main_category": _text(record.get("main_category")),
    }


def _text(value, sep: str = " ") -> str:
    """A metadata value as text: lists joined, null → ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return sep.join(_text(v, sep) for v in value if v is not None and v != "")
    return str(value)


def _first(record: dict, keys: tuple[str, ...], required: bool = True):
    for key in keys:
        if key in record:
            return record[key]
    if required:
        raise KeyError(f"missing field {keys[0]!r} (also accepted: {', '.join(keys[1:])})")
    return None


def _key(record: dict, keys: tuple[str, ...]) -> str:
    value = _first(record, keys)
    if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value).strip() == "":
        raise KeyError(f"field {keys[0]!r} must be a non-empty string")
    return str(value)
