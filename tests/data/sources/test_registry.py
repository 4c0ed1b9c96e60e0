import gzip

import pytest

from llm2rec.data.sources import READERS, read_source
from llm2rec.errors import ConfigError, DataFormatError
from tests.data.sources.fixtures import write_amazon2023


def test_formats():
    assert set(READERS) == {"amazon2023", "amazon2023-benchmark", "recbole", "d3", "generic"}


def test_unknown_format_lists_known_ones():
    with pytest.raises(ConfigError, match="amazon2023-benchmark, recbole, d3, generic"):
        read_source("movielens", [])


def test_missing_input(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        read_source("amazon2023", [tmp_path / "nope"])
    with pytest.raises(ConfigError, match="at least one input"):
        read_source("d3", [])


def test_skip_bad_lines_flag_reaches_the_reader(tmp_path):
    reviews, _ = write_amazon2023(tmp_path)
    reviews.write_text(reviews.read_text() + "not json\n")
    log = read_source("amazon2023", [tmp_path], skip_bad_lines=True)
    assert log.bad_lines.skip and log.bad_lines.to_dict()["by_reason"] == {"malformed JSON": 1}


EMPTY_CASES = {
    "amazon2023": ("Cat.jsonl", {"meta_Cat.jsonl": '{"parent_asin": "B1", "title": "T"}\n'}),
    "amazon2023-benchmark": ("Cat.csv", {"meta_Cat.jsonl": '{"parent_asin": "B1", "title": "T"}\n'}),
    "recbole": ("x.inter", {"x.item": "item_id:token\ttitle:token_seq\nB1\tT\n"}),
    "d3": ("x.csv", {}),
    "generic": ("events.csv", {"items.csv": "item_id,title\nB1,T\n"}),
}


@pytest.mark.parametrize("fmt", sorted(EMPTY_CASES))
def test_empty_file_is_named(tmp_path, fmt):
    main, companions = EMPTY_CASES[fmt]
    (tmp_path / main).write_bytes(b"")
    for name, text in companions.items():
        (tmp_path / name).write_text(text)
    with pytest.raises(DataFormatError, match="empty") as err:
        read_source(fmt, [tmp_path], skip_bad_lines=True)
    assert err.value.path == str(tmp_path / main)


@pytest.mark.parametrize("fmt", ["amazon2023-benchmark", "generic"])
def test_truncated_gzip_csv(tmp_path, fmt):
    main = "Cat.csv.gz" if fmt == "amazon2023-benchmark" else "events.csv.gz"
    rows = "".join(f"U{n},B1,5.0,{1588687728923 + n}\n" for n in range(20000))
    data = gzip.compress(("user_id,parent_asin,rating,timestamp\n" + rows).encode())
    (tmp_path / main).write_bytes(data[: len(data) // 2])
    (tmp_path / "meta_Cat.jsonl").write_text('{"parent_asin": "B1", "title": "T"}\n')
    (tmp_path / "items.csv").write_text("item_id,title\nB1,T\n")
    options = {"item_col": "parent_asin", "items_path": tmp_path / "items.csv"} if fmt == "generic" else {}
    inputs = [tmp_path / main, tmp_path / ("items.csv" if fmt == "generic" else "meta_Cat.jsonl")]
    with pytest.raises(DataFormatError, match="truncated or corrupt"):
        read_source(fmt, inputs, **options)
