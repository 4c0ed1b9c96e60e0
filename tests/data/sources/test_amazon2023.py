import gzip
import json

import numpy as np
import pytest

from llm2rec.data.sources import read_source
from llm2rec.errors import ConfigError, DataFormatError
from tests.data.sources.fixtures import META, REVIEWS, meta_line, review_line, write_amazon2023, write_lines


@pytest.mark.parametrize("gz", [False, True])
def test_reads_reviews_and_meta(tmp_path, gz):
    reviews, meta = write_amazon2023(tmp_path, gz=gz)
    log = read_source("amazon2023", [reviews, meta])
    df = log.interactions
    assert list(zip(df.user, df.item, df.timestamp, df.rating)) == REVIEWS
    assert df.timestamp.dtype == np.int64 and log.has_time and log.presplit is None
    items = log.items.set_index("item")
    assert set(items.index) == {r[1] for r in REVIEWS}
    assert items.loc["B076WQZGPM", "title"] == META["B076WQZGPM"]  # raw: cleaning is the protocol's job
    assert items.loc["B099DRHW5V", "title"] == ""  # reviewed but no metadata: kept, title ""
    row = items.loc["B01CUPMQZE"]
    assert row["brand"] == "Howard Products"
    assert row["categories"] == "Beauty > Skin Care"
    assert row["description"] == "Keeps leather soft. Made in USA."
    assert row["features"] == "Conditions leather 8 oz"
    assert row["main_category"] == "All Beauty"
    assert log.notes["items_without_metadata"] == 1
    assert log.format == "amazon2023" and set(log.source_files) == {reviews, meta}


def test_directory_input_finds_meta_by_prefix(tmp_path):
    write_amazon2023(tmp_path / "raw")
    (tmp_path / "raw" / "notes.txt").write_text("ignored")
    log = read_source("amazon2023", [tmp_path / "raw"])
    assert len(log.interactions) == len(REVIEWS)
    assert {p.name for p in log.source_files} == {"All_Beauty.jsonl", "meta_All_Beauty.jsonl"}


@pytest.mark.parametrize("ts_key", ["sort_timestamp", "sortTimestamp"])
def test_timestamp_spellings(tmp_path, ts_key):
    write_amazon2023(tmp_path, ts_key=ts_key)
    assert read_source("amazon2023", [tmp_path]).interactions.timestamp.tolist() == [r[2] for r in REVIEWS]


def test_seconds_are_converted_to_ms_and_noted(tmp_path):
    reviews = [(u, i, t // 1000 if n % 2 else t, r) for n, (u, i, t, r) in enumerate(REVIEWS)]
    write_amazon2023(tmp_path, reviews=reviews)
    log = read_source("amazon2023", [tmp_path])
    assert log.interactions.timestamp.tolist() == [
        t // 1000 * 1000 if n % 2 else t for n, (_, _, t, _) in enumerate(REVIEWS)
    ]
    assert log.notes["timestamps_converted_from_seconds"] == 2


def test_duplicate_events_are_kept_for_the_protocol(tmp_path):
    write_amazon2023(tmp_path, reviews=REVIEWS + REVIEWS[:1])
    assert len(read_source("amazon2023", [tmp_path]).interactions) == len(REVIEWS) + 1


def test_null_title_and_missing_rating(tmp_path):
    reviews = tmp_path / "Cat.jsonl"
    record = json.loads(review_line(*REVIEWS[0]))
    del record["rating"]
    write_lines(reviews, [json.dumps(record)])
    write_lines(tmp_path / "meta_Cat.jsonl", [meta_line(REVIEWS[0][1], None)])
    log = read_source("amazon2023", [tmp_path])
    assert np.isnan(log.interactions.rating[0])
    assert log.items.title.tolist() == [""]


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ('{"user_id": "u", "parent_asin": ', "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ('{"parent_asin": "B1", "timestamp": 1588687728923}', "user_id"),
        ('{"user_id": "u", "timestamp": 1588687728923}', "parent_asin"),
        ('{"user_id": "u", "parent_asin": "B1"}', "timestamp"),
        ('{"user_id": "u", "parent_asin": "B1", "timestamp": "soon"}', "timestamp"),
        ('{"user_id": "u", "parent_asin": "B1", "timestamp": 1588687728923, "rating": "five"}', "rating"),
    ],
)
def test_bad_line_names_file_and_line_or_is_skipped(tmp_path, line, problem):
    write_amazon2023(tmp_path)
    path = tmp_path / "All_Beauty.jsonl"
    lines = path.read_text().splitlines()
    write_lines(path, lines[:2] + [line] + lines[2:])
    with pytest.raises(DataFormatError, match=problem) as err:
        read_source("amazon2023", [tmp_path])
    assert err.value.path == str(path) and err.value.line == 3
    log = read_source("amazon2023", [tmp_path], skip_bad_lines=True)
    assert len(log.interactions) == len(REVIEWS)
    assert log.bad_lines.to_dict()["total"] == 1


def test_truncated_gzip(tmp_path):
    reviews, _ = write_amazon2023(tmp_path, gz=True, reviews=REVIEWS * 400)
    reviews.write_bytes(reviews.read_bytes()[:-20])
    with pytest.raises(DataFormatError, match="truncated"):
        read_source("amazon2023", [tmp_path])
    log = read_source("amazon2023", [tmp_path], skip_bad_lines=True)
    assert 0 < len(log.interactions) < 2000


def test_not_gzip_at_all(tmp_path):
    reviews, _ = write_amazon2023(tmp_path, gz=True)
    reviews.write_bytes(b"this is not gzip\n")
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read_source("amazon2023", [tmp_path])


def test_non_utf8_line(tmp_path):
    reviews, _ = write_amazon2023(tmp_path)
    reviews.write_bytes(reviews.read_bytes() + b'{"user_id": "\xff"}\n')
    with pytest.raises(DataFormatError, match=f"{reviews.name}:6: not valid UTF-8"):
        read_source("amazon2023", [tmp_path])


def test_empty_and_missing_files(tmp_path):
    reviews, meta = write_amazon2023(tmp_path)
    with pytest.raises(DataFormatError, match="no metadata file"):
        read_source("amazon2023", [reviews])
    with pytest.raises(DataFormatError, match="no review file"):
        read_source("amazon2023", [meta])
    reviews.write_bytes(b"")
    with pytest.raises(DataFormatError, match="empty"):
        read_source("amazon2023", [tmp_path])
    reviews.write_bytes(b"\n\n")
    with pytest.raises(DataFormatError, match="no usable review"):
        read_source("amazon2023", [tmp_path])


def test_options_are_checked(tmp_path):
    write_amazon2023(tmp_path)
    with pytest.raises(ConfigError, match="ships no"):
        read_source("amazon2023", [tmp_path], use_shipped_split=True)
    with pytest.raises(ConfigError, match="no option"):
        read_source("amazon2023", [tmp_path], user_col="x")


def test_2018_field_names(tmp_path):
    record = {"reviewerID": "A1", "asin": "B1", "overall": 4.0, "unixReviewTime": 1504656000}
    write_lines(tmp_path / "Cat.json.gz", [json.dumps(record)], gz=True)
    write_lines(tmp_path / "meta_Cat.json", [json.dumps({"asin": "B1", "title": "T", "brand": "X"})])
    log = read_source("amazon2023", [tmp_path])
    assert log.interactions.iloc[0].tolist() == ["A1", "B1", 1504656000000, 4.0]
    assert log.items.iloc[0][["title", "brand"]].tolist() == ["T", "X"]


def test_gzip_round_trip_of_many_lines_is_streamed(tmp_path):
    path = tmp_path / "Cat.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for n in range(3000):
            fh.write(review_line(f"U{n % 97}", f"B{n % 31}", 1588687728923 + n, 5.0) + "\n")
    write_lines(tmp_path / "meta_Cat.jsonl", [meta_line(f"B{i}", f"Item {i}") for i in range(31)])
    log = read_source("amazon2023", [tmp_path])
    assert len(log.interactions) == 3000 and len(log.items) == 31 and (log.items.title != "").all()
