"""`llm2rec export --format llm2rec`: the official code's layout, ids and CSV literals."""

from __future__ import annotations

import ast
import csv
import json

from llm2rec.data.export import export_llm2rec
from llm2rec.data.protocol import ProtocolSettings, prepare
from tests.data.test_protocol import HAND_EVENTS, HAND_TITLES, _raw


def test_export_layout_and_ids(tmp_path):
    ds = prepare(_raw(HAND_EVENTS, HAND_TITLES), tmp_path / "ds", ProtocolSettings(kcore=0, max_history=2))
    out = export_llm2rec(ds, tmp_path / "official", name="Hand")
    down = out / "downstream"
    titles = json.loads((down / "item_titles.json").read_text())
    assert list(titles) == [str(i) for i in range(1, 11)] and titles["1"] == "A"
    assert (down / "test_data.txt").read_text().splitlines() == ["2 5 6", "2 5 8", "7 9 10", "3 4 1", "2 5 6"]
    assert (down / "val_data.txt").read_text().splitlines()[0] == "1 2 5"
    assert (down / "train_data.txt").read_text().splitlines() == ["1 2", "1 7"]
    assert len((down / "data.txt").read_text().splitlines()) == 5
    rows = list(csv.DictReader((out / "train" / "Hand.csv").open()))
    assert [ast.literal_eval(r["history_item_title"]) for r in rows] == [["A"], ["A"]]
    # CSV ids are 0-based: downstream id - 1
    assert [ast.literal_eval(r["history_item_id"]) for r in rows] == [[0], [0]]
    assert [int(r["item_id"]) for r in rows] == [1, 6]
    assert (out / "info" / "item_titles.txt").read_text().splitlines()[:2] == ["A", "B"]
