"""The built-in synthetic dataset: determinism, sizes, visible patterns, Amazon 2023 file form."""

from __future__ import annotations

import gzip
import json
import re

import numpy as np
import pandas as pd
import pytest

from llm2rec.data.amazon2023_files import write_amazon2023_files
from llm2rec.data.synthetic import describe, generate

SMALL = {"num_users": 600, "num_items": 400, "seed": 7}


@pytest.fixture(scope="module")
def raw():
    return generate(**SMALL)


@pytest.fixture(scope="module")
def default_raw():
    return generate()


def test_same_seed_same_output_other_seed_other_output(raw, tmp_path):
    again = generate(**SMALL)
    pd.testing.assert_frame_equal(raw.interactions, again.interactions)
    pd.testing.assert_frame_equal(raw.items, again.items)
    a = write_amazon2023_files(raw, tmp_path / "a")
    b = write_amazon2023_files(again, tmp_path / "b")
    for x, y in zip(a, b, strict=True):
        assert x.read_bytes() == y.read_bytes()
    other = generate(**{**SMALL, "seed": 8})
    assert not raw.interactions["item"].equals(other.interactions["item"])


def test_sizes_types_and_ranges(raw):
    inter, items = raw.interactions, raw.items
    assert raw.format == "builtin" and raw.has_time and raw.notes["synthetic"] is True
    assert len(items) == SMALL["num_items"] and items["item"].is_unique
    assert inter["user"].nunique() == SMALL["num_users"]
    lengths = inter.groupby("user").size()
    assert lengths.between(5, 30).all() and 8 <= lengths.mean() <= 15
    assert set(inter["item"]) <= set(items["item"])
    assert inter["timestamp"].dtype == np.int64 and inter["rating"].dtype == np.float64
    assert set(inter["rating"].unique()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    ts = inter["timestamp"]
    assert ts.between(1_451_606_400_000, 1_696_118_400_000).all()  # ms, 2016-01 .. 2023-10
    assert (inter.groupby("user")["timestamp"].diff().dropna() > 0).all()  # chronological, no ties
    assert inter["user"].str.fullmatch(r"A[A-Z2-7]{27}").all()
    assert items["item"].str.fullmatch(r"B0[0-9A-Z]{8}").all()
    for column in ("brand", "categories", "description"):
        assert (items[column].str.len() > 0).all()


def test_sequence_lengths_respected():
    log = generate(num_users=200, num_items=200, seed=1, min_length=3, max_length=6)
    assert log.interactions.groupby("user").size().between(3, 6).all()


def test_titles_unique_and_of_moderate_length(default_raw):
    titles = default_raw.items["title"]
    assert titles.is_unique
    words = titles.str.split().str.len()
    assert words.between(5, 15).all()


def _series(title: str) -> tuple[str, int] | None:
    """(series name, volume) read from the title alone, for the four media title templates."""
    patterns = (
        r"The (?P<s>.+) Chronicles, Book (?P<k>\d+):",
        r"(?P<s>.+), Vol\. (?P<k>\d+):",
        r"(?P<s>.+): The Complete Season (?P<k>\d+) ",
        r"(?P<s>.+) (?P<r>[IVX]+): ",
    )
    roman = {r: i + 1 for i, r in enumerate(("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"))}
    for pattern in patterns:
        m = re.match(pattern, title)
        if m:
            return m.group("s"), int(m.group("k")) if "k" in m.groupdict() else roman[m.group("r")]
    return None


def _consecutive_pairs(raw) -> pd.DataFrame:
    m = raw.interactions.merge(raw.items, on="item", how="left")
    prev = m.shift(1)
    same_user = m["user"] == prev["user"]
    return pd.DataFrame(
        {
            "title_a": prev["title"][same_user],
            "title_b": m["title"][same_user],
            "brand_a": prev["brand"][same_user],
            "brand_b": m["brand"][same_user],
            "cat_a": prev["categories"][same_user],
            "cat_b": m["categories"][same_user],
        }
    )


def test_titles_reveal_series_order_brand_loyalty_and_complements(default_raw):
    pairs = _consecutive_pairs(default_raw)
    a = pairs["title_a"].map(_series)
    b = pairs["title_b"].map(_series)
    same_series = [x is not None and y is not None and x[0] == y[0] for x, y in zip(a, b, strict=True)]
    same_series = np.array(same_series)
    in_order = np.array([y[1] == x[1] + 1 for x, y, s in zip(a, b, same_series, strict=True) if s])
    same_brand = (pairs["brand_a"] == pairs["brand_b"]).to_numpy()
    # Shuffling the log destroys the patterns: the baseline a pattern-free log would give.
    shuffled = pairs["brand_b"].sample(frac=1.0, random_state=0).to_numpy()
    assert same_series.mean() > 0.15
    assert in_order.mean() > 0.9  # series are consumed volume after volume
    assert same_brand.mean() > 0.3 > 5 * (pairs["brand_a"].to_numpy() == shuffled).mean()
    # Complementary purchases: same department (first two category levels), different product category.
    dept = lambda s: s.str.rsplit(" > ", n=1).str[0]  # noqa: E731
    products = ~pairs["cat_a"].str.contains("Novels|Manga|TV Series|Console Games")
    complement = (
        products & (dept(pairs["cat_a"]) == dept(pairs["cat_b"])) & (pairs["cat_a"] != pairs["cat_b"])
    )
    assert complement.mean() > 0.1


def test_popularity_is_skewed(default_raw):
    counts = default_raw.interactions["item"].value_counts()
    top_decile = counts.iloc[: len(counts) // 10].sum() / counts.sum()
    assert top_decile > 0.25  # uniform would give 0.10
    assert (counts <= 3).sum() > 0  # a long tail exists


def _kcore(inter: pd.DataFrame, k: int) -> pd.DataFrame:
    while True:
        users = inter["user"].map(inter["user"].value_counts())
        items = inter["item"].map(inter["item"].value_counts())
        keep = (users >= k) & (items >= k)
        if keep.all():
            return inter
        inter = inter[keep]


def test_most_users_survive_five_core(default_raw):
    inter = default_raw.interactions.drop_duplicates(["user", "item"])
    kept = _kcore(inter, 5)
    assert kept["user"].nunique() >= 0.9 * inter["user"].nunique()
    assert kept["item"].nunique() >= 0.8 * len(default_raw.items)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError):
        generate(num_users=0)
    with pytest.raises(ValueError):
        generate(num_items=10)
    with pytest.raises(ValueError):
        generate(min_length=10, max_length=5)


def test_describe_says_synthetic(raw):
    text = describe(600, 400, 7)
    assert "SYNTHETIC" in text and "600" in text and "400" in text
    assert raw.notes["description"] == text


REVIEW_TYPES = {
    "rating": float,
    "title": str,
    "text": str,
    "images": list,
    "asin": str,
    "parent_asin": str,
    "user_id": str,
    "timestamp": int,
    "helpful_vote": int,
    "verified_purchase": bool,
}
META_TYPES = {
    "main_category": str,
    "title": str,
    "average_rating": float,
    "rating_number": int,
    "features": list,
    "description": list,
    "price": (float, type(None)),
    "images": list,
    "videos": list,
    "store": str,
    "categories": list,
    "details": dict,
    "parent_asin": str,
    "bought_together": type(None),
}


def _records(path):
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def test_amazon2023_files_have_the_documented_fields_and_types(raw, tmp_path):
    reviews_path, meta_path = write_amazon2023_files(raw, tmp_path, category="Toy_Category")
    assert reviews_path.name == "Toy_Category.jsonl.gz" and meta_path.name == "meta_Toy_Category.jsonl.gz"
    reviews, meta = _records(reviews_path), _records(meta_path)
    assert len(reviews) == len(raw.interactions) and len(meta) == len(raw.items)
    for record, types in [(r, REVIEW_TYPES) for r in reviews[:500]] + [(m, META_TYPES) for m in meta]:
        assert list(record) == list(types)
        for field, expected in types.items():
            value = record[field]
            assert isinstance(value, expected) and not (expected is int and isinstance(value, bool)), field
    assert all(len(str(r["timestamp"])) == 13 for r in reviews)
    assert all(isinstance(c, str) for m in meta for c in m["categories"])
    assert {m["main_category"] for m in meta} == {"Toy Category"}
    # The files carry the same log: users, items, times and titles.
    back = pd.DataFrame(reviews)
    assert back["user_id"].tolist() == raw.interactions["user"].tolist()
    assert back["parent_asin"].tolist() == raw.interactions["item"].tolist()
    assert back["timestamp"].tolist() == raw.interactions["timestamp"].tolist()
    assert [m["title"] for m in meta] == raw.items["title"].tolist()
    counts = raw.interactions["item"].value_counts()
    assert all(m["rating_number"] == counts.get(m["parent_asin"], 0) for m in meta)


def test_amazon2023_files_read_back_through_the_amazon_reader(raw, tmp_path):
    from llm2rec.data.sources import read_source

    paths = write_amazon2023_files(raw, tmp_path)
    back = read_source("amazon2023", list(paths))
    key = ["user", "timestamp"]
    got = back.interactions.sort_values(key, ignore_index=True)
    want = raw.interactions.sort_values(key, ignore_index=True)
    assert got["item"].tolist() == want["item"].tolist()
    assert got["timestamp"].tolist() == want["timestamp"].tolist()
    titles = dict(zip(back.items["item"], back.items["title"], strict=True))
    assert all(
        titles[k] == t for k, t in zip(raw.items["item"], raw.items["title"], strict=True) if k in titles
    )
