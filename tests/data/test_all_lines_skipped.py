"""`--skip-bad-lines` that empties a whole input file: the error says which file lost all its lines and why
(issue 35), instead of a bare "no interactions are left"."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

import pytest

from llm2rec.data.schema import BadLines
from llm2rec.data.sources import load_raw
from llm2rec.data.sources._common import iter_text_lines, read_csv_table
from llm2rec.errors import DataFormatError
from tests.data.sources.fixtures import write_amazon2023, write_lines


def _prepare(*args, out: Path):
    cmd = [sys.executable, "-m", "llm2rec.cli", "prepare", *map(str, args), "--out", str(out), "--kcore", "0",
           "--skip-bad-lines"]  # fmt: skip
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def test_a_review_file_whose_every_line_was_skipped_is_named_with_its_first_problem(tmp_path):
    reviews, meta = write_amazon2023(tmp_path / "in")
    write_lines(reviews, ["{not json"] * 12)
    r = _prepare("--format", "amazon2023", "--input", reviews, meta, out=tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "All_Beauty.jsonl: all 12 lines skipped (first: line 1: malformed JSON)" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_no_interactions_left_names_the_metadata_file_that_lost_every_line(tmp_path):
    reviews, meta = write_amazon2023(tmp_path / "in")
    write_lines(meta, ["[1, 2]", "[3]", "{broken"])  # no item keeps a title: every review is dropped
    r = _prepare("--format", "amazon2023", "--input", reviews, meta, out=tmp_path / "out")
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert "no interactions are left" in r.stderr
    assert "meta_All_Beauty.jsonl: all 3 lines skipped (first: line 1: " in r.stderr, r.stderr
    assert "All_Beauty.jsonl: all" not in r.stderr.replace("meta_All_Beauty.jsonl: all", "")


def test_a_generic_log_whose_every_line_was_skipped(tmp_path):
    inter = write_lines(tmp_path / "log.jsonl", ['{"user": "u1", "item": "i1"'] * 5)  # every line cut short
    items = tmp_path / "items.csv"
    items.write_text("item,title\ni1,Thing\n")
    with pytest.raises(
        DataFormatError, match=r"log\.jsonl: all 5 lines skipped \(first: line 1: malformed JSON\)"
    ):
        load_raw("generic", [inter, items], skip_bad_lines=True)


def test_a_recbole_file_whose_every_record_was_skipped_leaves_its_header_out_of_the_count(tmp_path):
    inter = tmp_path / "x.inter"
    inter.write_text("user_id:token\titem_id:token\ttimestamp:float\n" + "u1\ti1\n" * 4)
    (tmp_path / "x.item").write_text("item_id:token\ttitle:token_seq\ni1\tThing\n")
    with pytest.raises(DataFormatError, match=r"x\.inter: all 4 lines skipped \(first: line 2: expected 3"):
        load_raw("recbole", [tmp_path], skip_bad_lines=True)


def test_a_file_that_kept_some_lines_is_not_said_to_have_lost_them_all(tmp_path):
    path = write_lines(tmp_path / "a.jsonl", ["{bad", "{}", "", "{also bad"])
    bad = BadLines(skip=True)
    assert [n for n, _ in iter_text_lines(path, bad)] == [1, 2, 4]
    bad.handle(path, 1, "malformed JSON")
    bad.handle(path, 4, "malformed JSON")
    assert bad.emptied() == []  # line 2 was kept
    bad.handle(path, 2, "a line must be a JSON object")
    bad.handle(path, 2, "counted once per line")
    assert bad.emptied() == ["a.jsonl: all 3 lines skipped (first: line 1: malformed JSON)"]


def test_a_truncated_archive_that_gave_no_line_is_named(tmp_path):
    path = tmp_path / "r.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:20])
    bad = BadLines(skip=True)
    assert list(iter_text_lines(path, bad)) == []
    (message,) = bad.emptied()
    assert message.startswith(
        "r.jsonl.gz: its only line skipped (first: line 1: compressed file is truncated"
    )


def test_csv_rows_count_as_lines(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("a,b\n1,2\n3,4,5\n6,7\n")
    bad = BadLines(skip=True)
    assert len(read_csv_table(path, bad)) == 2
    assert bad.emptied() == []
