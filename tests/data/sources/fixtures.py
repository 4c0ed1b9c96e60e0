"""Small input files in exactly the documented formats, written into a test's tmp_path (never committed)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

# Amazon 2023 reviews: (user, parent_asin, timestamp in ms, rating). u1 has 3 events, u2 has 2.
REVIEWS = [
    ("AGKHLEW2SOWHNMFQIJGBECAF7INQ", "B01CUPMQZE", 1588687728923, 5.0),
    ("AGKHLEW2SOWHNMFQIJGBECAF7INQ", "B076WQZGPM", 1588687729000, 4.0),
    ("AFQLNQNQYFWQZPJQZS6V3NZU4QBQ", "B01CUPMQZE", 1589000000000, 3.0),
    ("AGKHLEW2SOWHNMFQIJGBECAF7INQ", "B000FOI48G", 1600000000000, 1.0),
    ("AFQLNQNQYFWQZPJQZS6V3NZU4QBQ", "B099DRHW5V", 1601000000000, 2.0),
]
META = {
    "B01CUPMQZE": "Howard LC0008 Leather Conditioner, 8-Ounce (4-Pack)",
    "B076WQZGPM": "Yes to Tomatoes Detoxifying Charcoal Cleanser &amp; Mask",
    "B000FOI48G": "Citre Shine Moisture Burst Shampoo - 16 fl oz",
}  # B099DRHW5V has no metadata


def review_line(user: str, item: str, ts: int, rating: float, ts_key: str = "timestamp") -> str:
    return json.dumps(
        {
            "rating": rating,
            "title": "Such a lovely scent but not overpowering.",
            "text": "This spray is nice.",
            "images": [],
            "asin": item + "X",
            "parent_asin": item,
            "user_id": user,
            ts_key: ts,
            "helpful_vote": 0,
            "verified_purchase": True,
        }
    )


def meta_line(item: str, title) -> str:
    return json.dumps(
        {
            "main_category": "All Beauty",
            "title": title,
            "average_rating": 4.8,
            "rating_number": 10,
            "features": ["Conditions leather", "8 oz"],
            "description": ["Keeps leather soft.", "Made in USA."],
            "price": None,
            "images": [{"thumb": "t.jpg", "large": "l.jpg", "variant": "MAIN", "hi_res": None}],
            "videos": [],
            "store": "Howard Products",
            "categories": ["Beauty", "Skin Care"],
            "details": {"UPC": "617390882781"},
            "parent_asin": item,
            "bought_together": None,
        }
    )


def write_lines(path: Path, lines: list[str], gz: bool = False) -> Path:
    data = ("\n".join(lines) + "\n").encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_amazon2023(
    root: Path,
    category: str = "All_Beauty",
    gz: bool = False,
    ts_key: str = "timestamp",
    reviews=REVIEWS,
    meta=META,
) -> tuple[Path, Path]:
    ext = ".jsonl.gz" if gz else ".jsonl"
    reviews_path = write_lines(
        root / f"{category}{ext}", [review_line(*r, ts_key=ts_key) for r in reviews], gz
    )
    meta_path = write_lines(root / f"meta_{category}{ext}", [meta_line(k, t) for k, t in meta.items()], gz)
    return reviews_path, meta_path


def user_histories(reviews=REVIEWS) -> dict[str, list[str]]:
    """Each user's items in time order (what a benchmark _w_his history is built from)."""
    out: dict[str, list[str]] = {}
    for user, item, _, _ in sorted(reviews, key=lambda r: r[2]):
        out.setdefault(user, []).append(item)
    return out


def write_benchmark(
    root: Path,
    category: str = "All_Beauty",
    header: bool = True,
    history: bool = False,
    splits: bool = True,
    gz: bool = False,
) -> list[Path]:
    """last_out[_w_his] (splits=True) or rating_only (splits=False) CSVs for REVIEWS."""
    columns = "user_id,parent_asin,rating,timestamp" + (",history" if history else "")
    rows: dict[str, list[str]] = {"train": [], "valid": [], "test": [], "": []}
    for user, items in user_histories().items():
        events = sorted((r for r in REVIEWS if r[0] == user), key=lambda r: r[2])
        for i, (u, item, ts, rating) in enumerate(events):
            split = (
                ""
                if not splits
                else ("test" if i == len(items) - 1 else "valid" if i == len(items) - 2 else "train")
            )
            line = f"{u},{item},{rating},{ts}" + (f",{' '.join(items[:i])}" if history else "")
            rows[split].append(line)
    ext = ".csv.gz" if gz else ".csv"
    paths = []
    for split, lines in rows.items():
        if (split == "") == splits:
            continue
        name = f"{category}.{split}{ext}" if split else f"{category}{ext}"
        paths.append(write_lines(root / name, ([columns] if header else []) + lines, gz))
    return paths
