"""Amazon Reviews 2023 files from any raw log: ``<Category>.jsonl.gz`` and ``meta_<Category>.jsonl.gz``, fields
and types as in the dataset's documentation, for fixtures and benchmarks of the Amazon reader (by default
from the built-in synthetic log)."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.data.schema import RawLog
from llm2rec.data.synthetic import generate

REVIEW_TEXTS = {
    1.0: ("Disappointed", "Stopped working after a week. Would not buy again."),
    2.0: ("Not great", "Does the job but feels cheap for the price."),
    3.0: ("It's okay", "Average quality, nothing special."),
    4.0: ("Pretty good", "Works well, a few minor quirks."),
    5.0: ("Love it", "Exactly as described, highly recommend."),
}


def write_amazon2023_files(
    raw: RawLog | None, out_dir: str | Path, category: str = "Synthetic", *, compresslevel: int = 1
) -> tuple[Path, Path]:
    """Write ``raw`` (default: :func:`generate`) as Amazon Reviews 2023 ``<category>.jsonl.gz`` and
    ``meta_<category>.jsonl.gz`` in ``out_dir``; return (reviews path, meta path).

    One review per interaction, one meta record per item, with the field names and JSON types of the
    released files (reviews: rating, title, text, images, asin, parent_asin, user_id, timestamp in ms,
    helpful_vote, verified_purchase; meta: main_category, title, average_rating, rating_number, features,
    description, price, images, videos, store, categories, details, parent_asin, bought_together).
    Each file is written atomically; the gzip header carries no time, so output bytes are reproducible.
    """
    raw = generate() if raw is None else raw
    out_dir = Path(out_dir)
    reviews = out_dir / f"{category}.jsonl.gz"
    meta = out_dir / f"meta_{category}.jsonl.gz"
    _write_gzip_lines(reviews, _review_lines(raw.interactions), compresslevel)
    _write_gzip_lines(meta, _meta_lines(raw, category), compresslevel)
    return reviews, meta


def _review_lines(inter: pd.DataFrame) -> list[str]:
    # Build JSON by concatenating pre-encoded fragments: json.dumps per row is too slow for 1M rows.
    rng = np.random.default_rng(len(inter))
    rating = inter["rating"].to_numpy(dtype=np.float64)
    known = np.where(np.isnan(rating), 5.0, np.clip(np.round(rating), 1.0, 5.0))
    head = {  # everything up to the asin value, i.e. the JSON object without its closing brace
        r: json.dumps({"rating": r, "title": t, "text": x, "images": []})[:-1] + ', "asin": '
        for r, (t, x) in REVIEW_TEXTS.items()
    }
    item_codes, item_keys = pd.factorize(inter["item"])
    user_codes, user_keys = pd.factorize(inter["user"])
    item_json = [json.dumps(str(k)) for k in item_keys]
    user_json = [json.dumps(str(k)) for k in user_keys]
    votes = rng.geometric(0.7, size=len(inter)) - 1
    verified = rng.random(len(inter)) < 0.9
    timestamps = inter["timestamp"].to_numpy(dtype=np.int64)
    return [
        f'{head[r]}{item_json[i]}, "parent_asin": {item_json[i]}, "user_id": {user_json[u]}, '
        f'"timestamp": {ts}, "helpful_vote": {v}, "verified_purchase": {"true" if ok else "false"}}}'
        for r, i, u, ts, v, ok in zip(
            known.tolist(), item_codes.tolist(), user_codes.tolist(), timestamps.tolist(), votes.tolist(),
            verified.tolist(), strict=True,
        )
    ]  # fmt: skip


def _meta_lines(raw: RawLog, category: str) -> list[str]:
    items = raw.items
    stats = raw.interactions.groupby("item")["rating"].agg(["mean", "count"])
    rng = np.random.default_rng(len(items))
    prices = np.round(rng.lognormal(3.2, 0.8, size=len(items)), 2)
    has_price = rng.random(len(items)) < 0.85  # real meta often lacks a price
    main_category = category.replace("_", " ")
    lines = []
    for i, row in enumerate(items.itertuples(index=False)):
        key = str(row.item)
        mean, count = stats.loc[key] if key in stats.index else (np.nan, 0)
        store = str(getattr(row, "brand", "") or "")
        cats = [c for c in str(getattr(row, "categories", "") or "").split(" > ") if c]
        desc = str(getattr(row, "description", "") or "")
        record = {
            "main_category": main_category,
            "title": str(row.title),
            "average_rating": round(float(mean), 1) if count and not np.isnan(mean) else 0.0,
            "rating_number": int(count),
            "features": [f"Brand: {store}"] if store else [],
            "description": [desc] if desc else [],
            "price": float(prices[i]) if has_price[i] else None,
            "images": [],
            "videos": [],
            "store": store,
            "categories": cats,
            "details": {"Brand": store, "Item model number": key} if store else {"Item model number": key},
            "parent_asin": key,
            "bought_together": None,
        }
        lines.append(json.dumps(record, ensure_ascii=False))
    return lines


def _write_gzip_lines(path: Path, lines: list[str], compresslevel: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            # filename="" and mtime=0 keep the gzip header free of names and times: reproducible bytes.
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=fh, compresslevel=compresslevel, mtime=0
            ) as gz:
                chunk = 100_000
                for start in range(0, len(lines), chunk):
                    gz.write(("\n".join(lines[start : start + chunk]) + "\n").encode("utf-8"))
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
