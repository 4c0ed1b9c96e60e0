"""Arbitrary input → a RawLog or a DataFormatError, never another exception (with and without skipping)."""

import json
import os
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from llm2rec.data.schema import RawLog
from llm2rec.data.sources import read_source
from llm2rec.errors import DataFormatError
from tests.data.sources.fixtures import META, meta_line, review_line, write_lines

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["user_id", "parent_asin", "timestamp", "rating", "title", "x"]),
            inner,
            max_size=5,
        )
    ),
    max_leaves=8,
)
line_pieces = st.sampled_from(
    [
        "user_id",
        "parent_asin",
        "1588687728923",
        "1504656000",
        "B01CUPMQZE",
        "u",
        ",",
        "\t",
        '"',
        "'",
        "[",
        "]",
        "{",
        "}",
        "5.0",
        "nan",
        "-1",
        "1e400",
        "['a', 'b']",
        "[1, 2]",
        "\\",
        " ",
        "",
    ]
)
text_lines = st.lists(st.lists(line_pieces, max_size=8).map("".join), max_size=6).map(
    lambda lines: ("\n".join(lines)).encode()
)
contents = st.one_of(
    st.binary(max_size=200),
    text_lines,
    st.lists(json_values.map(json.dumps), max_size=5).map(lambda lines: "\n".join(lines).encode()),
)

# A few examples per run in CI; LLM2REC_FUZZ_EXAMPLES=2000 for a deeper search.
FUZZ = settings(max_examples=int(os.environ.get("LLM2REC_FUZZ_EXAMPLES", 25)), deadline=None)


def _check(fmt, inputs, **options):
    for skip in (False, True):
        try:
            result = read_source(fmt, inputs, skip_bad_lines=skip, **options)
        except DataFormatError:
            continue
        assert isinstance(result, RawLog)


@FUZZ
@given(data=contents, header=st.booleans())
def test_amazon2023_reviews_and_meta(data, header):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        good = review_line("U", "B01CUPMQZE", 1588687728923, 5.0)
        (root / "Cat.jsonl").write_bytes((good + "\n").encode() * header + data)
        write_lines(root / "meta_Cat.jsonl", [meta_line(k, t) for k, t in META.items()])
        _check("amazon2023", [root])
        (root / "meta_Cat.jsonl").write_bytes(data)
        (root / "Cat.jsonl").write_text(good + "\n")
        _check("amazon2023", [root])


@FUZZ
@given(data=contents, header=st.booleans(), split=st.booleans())
def test_amazon2023_benchmark(data, header, split):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        head = b"user_id,parent_asin,rating,timestamp,history\n" if header else b""
        (root / ("Cat.train.csv" if split else "Cat.csv")).write_bytes(head + data)
        write_lines(root / "meta_Cat.jsonl", [meta_line(k, t) for k, t in META.items()])
        _check("amazon2023-benchmark", [root], use_shipped_split=split)


@FUZZ
@given(data=contents, sequences=st.booleans())
def test_recbole(data, sequences):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        head = (
            b"user_id:token\titem_id_list:token_seq\titem_id:token\n"
            if sequences
            else b"user_id:token\titem_id:token\ttimestamp:float\n"
        )
        (root / "x.inter").write_bytes(head + data)
        (root / "x.item").write_bytes(b"item_id:token\ttitle:token_seq\n" + data)
        _check("recbole", [root])
        (root / "x.item").unlink()
        (root / "x.text").write_bytes(b"item_id:token\ttext:token_seq\n" + data)
        (root / "x.item2index").write_bytes(data)
        _check("recbole", [root])


@FUZZ
@given(data=contents, asin=st.booleans())
def test_d3(data, asin):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        head = (
            b"user_id,item_asins,item_asin,history_item_id,item_id,history_timestamp,timestamp,item_title\n"
            if asin
            else b"user_id,history_item_title,item_title,history_item_id,item_id\n"
        )
        (root / "x.csv").write_bytes(head + data)
        (root / "x.txt").write_bytes(data)
        (root / "x.item.json").write_bytes(data)
        _check("d3", [root])


@FUZZ
@given(data=contents, items_data=contents)
def test_generic(data, items_data):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "events.csv").write_bytes(b"user_id,item_id,timestamp\n" + data)
        (root / "items.jsonl").write_bytes(items_data)
        _check("generic", [root])
        (root / "items.jsonl").write_bytes(b'{"item_id": "u", "title": "T"}\n')
        (root / "events.csv").write_bytes(data)
        _check("generic", [root])
