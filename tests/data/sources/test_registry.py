import pytest

from llm2rec.data.sources import READERS, read_source
from llm2rec.errors import ConfigError
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
