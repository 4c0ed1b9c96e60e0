import gzip

import numpy as np
import pytest

from llm2rec.data.schema import BadLines
from llm2rec.data.sources._common import (
    iter_text_lines,
    merge_row,
    parse_literal_list,
    parse_timestamp,
    read_csv_table,
    to_milliseconds,
)
from llm2rec.errors import DataFormatError


@pytest.mark.parametrize(
    ("sequence", "history", "expected"),
    [
        ([], ["a", "b"], (0, 0, True)),  # first row of a user: take its whole history
        (["a", "b", "c"], ["b", "c"], (0, 2, True)),  # the usual sliding window
        (["b", "c"], ["a", "b", "c"], (1, 3, True)),  # the row knows an earlier item
        (["a", "b"], ["b", "x"], (0, 1, False)),  # overlaps on "b", then a gap
        (["a", "b"], ["x", "y"], (0, 0, False)),  # no overlap at all
        (["a"], [], (0, 0, False)),
    ],
)
def test_merge_row(sequence, history, expected):
    assert merge_row(sequence, history) == expected


def test_to_milliseconds_auto_converts_only_seconds():
    ms, converted = to_milliseconds(np.array([1504656000, 1588687728923]))
    assert ms.tolist() == [1504656000000, 1588687728923]
    assert converted == 1
    assert to_milliseconds([5], "s")[0].tolist() == [5000]
    assert to_milliseconds([5], "ms")[0].tolist() == [5]


@pytest.mark.parametrize("bad", [True, "x", float("nan"), -1, 10**20, None, [1]])
def test_parse_timestamp_rejects(bad):
    with pytest.raises(ValueError):
        parse_timestamp(bad)


def test_parse_timestamp_accepts_strings_and_floats():
    assert parse_timestamp("1588687728923") == 1588687728923
    assert parse_timestamp(1.5e12) == 1500000000000


def test_parse_literal_list_never_evaluates_code():
    assert parse_literal_list("['a', \"b's\"]") == ["a", "b's"]
    assert parse_literal_list("[1, 2]") == [1, 2]
    with pytest.raises(ValueError):
        parse_literal_list("__import__('os').system('true')")
    with pytest.raises(ValueError):
        parse_literal_list("{'a': 1}")


def test_iter_text_lines_truncated_gzip(tmp_path):
    path = tmp_path / "x.jsonl.gz"
    path.write_bytes(gzip.compress(b"".join(b'{"a": %d}\n' % i for i in range(5000)))[:-30])
    with pytest.raises(DataFormatError, match="truncated"):
        list(iter_text_lines(path, BadLines()))
    bad = BadLines(skip=True)
    lines = list(iter_text_lines(path, bad))
    assert 0 < len(lines) < 5000 and bad.to_dict()["total"] == 1


def test_iter_text_lines_non_utf8_names_line(tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_bytes(b"ok\n\xff\xfe bad\nok\n")
    with pytest.raises(DataFormatError, match=r"x.jsonl:2: not valid UTF-8"):
        list(iter_text_lines(path, BadLines()))
    assert [n for n, _ in iter_text_lines(path, BadLines(skip=True))] == [1, 3]


def test_read_csv_table_errors_name_the_line(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    with pytest.raises(DataFormatError, match="line 3") as err:
        read_csv_table(path, BadLines())
    assert err.value.line == 3
    bad = BadLines(skip=True)
    table = read_csv_table(path, bad)
    assert table.values.tolist() == [["1", "2"], ["6", "7"]]
    assert bad.to_dict()["total"] == 1


def test_read_csv_table_non_utf8(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"a,b\n1,2\n3,\xff\n6,7\n")
    with pytest.raises(DataFormatError, match=r"t.csv:3: not valid UTF-8"):
        read_csv_table(path, BadLines())
    assert read_csv_table(path, BadLines(skip=True))["a"].tolist() == ["1", "6"]


def test_read_csv_table_empty(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("")
    with pytest.raises(DataFormatError, match="empty"):
        read_csv_table(path, BadLines())


def test_read_csv_table_surplus_field_is_not_an_index(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2,3\n4,5,6\n")
    with pytest.raises(DataFormatError, match="more fields than the header"):
        read_csv_table(path, BadLines(skip=True))


def test_byte_order_mark_is_ignored(tmp_path):
    csv_path, jsonl_path = tmp_path / "t.csv", tmp_path / "t.jsonl"
    csv_path.write_bytes(b"\xef\xbb\xbfa,b\n1,2\n")
    jsonl_path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert list(read_csv_table(csv_path, BadLines()).columns) == ["a", "b"]
    assert list(iter_text_lines(jsonl_path, BadLines())) == [(1, '{"a": 1}\n')]
