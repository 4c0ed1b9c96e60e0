"""The protocol on a hand-computed fixture, and its invariants on random logs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llm2rec.data.protocol import ProtocolSettings, apply_protocol, kcore_filter, prepare
from llm2rec.data.schema import RawLog
from llm2rec.errors import ConfigError


def _raw(events, titles, presplit=None, has_time=True) -> RawLog:
    inter = pd.DataFrame(events, columns=["user", "item", "timestamp"])
    inter["timestamp"] = inter["timestamp"].astype("int64")
    inter["rating"] = np.nan
    items = pd.DataFrame({"item": list(titles), "title": list(titles.values())})
    return RawLog(inter, items, source_files=[], format="test", has_time=has_time, presplit=presplit)


HAND_EVENTS = [
    ("u1", "a", 1), ("u1", "b", 2), ("u1", "c", 3), ("u1", "d", 4),
    ("u2", "b", 1), ("u2", "c", 5), ("u2", "e", 6),
    ("u3", "a", 3), ("u3", "a", 4), ("u3", "f", 5), ("u3", "g", 6), ("u3", "h", 7),
    ("u4", "i", 2), ("u4", "j", 2), ("u4", "a", 9),
    ("u5", "c", 1), ("u5", "d", 2),
    ("u6", "x", 1), ("u6", "b", 2), ("u6", "c", 3), ("u6", "d", 4),
]  # fmt: skip
HAND_TITLES = {k: k.upper() for k in "abcdefghij"} | {"x": "   ", "a": "<b>A</b>"}


def _rows(table) -> list[tuple]:
    df = table.to_pandas() if hasattr(table, "to_pandas") else table
    return [(int(u), [int(i) for i in h], int(t)) for u, h, t in zip(df["user"], df["history"], df["target"])]


def test_hand_computed_split_ids_and_pairs():
    prepared = apply_protocol(_raw(HAND_EVENTS, HAND_TITLES), ProtocolSettings(kcore=0, max_history=2))
    items = prepared.items
    assert list(items["key"]) == ["a", "b", "i", "j", "c", "d", "f", "e", "g", "h"]
    assert list(items["item_id"]) == list(range(1, 11))
    assert items["title"].iloc[0] == "A"  # HTML stripped
    seqs = prepared.sequences
    assert list(seqs["user_key"]) == ["u1", "u2", "u3", "u4", "u6"]
    assert [list(s) for s in seqs["items"]] == [[1, 2, 5, 6], [2, 5, 8], [1, 7, 9, 10], [3, 4, 1], [2, 5, 6]]
    assert list(seqs["n_train"]) == [2, 1, 2, 1, 1]
    assert _rows(prepared.examples["train"]) == [(0, [1], 2), (2, [1], 7)]
    assert _rows(prepared.examples["valid"]) == [
        (0, [1, 2], 5),
        (1, [2], 5),
        (2, [1, 7], 9),
        (3, [3], 4),
        (4, [2], 5),
    ]
    assert _rows(prepared.examples["test"]) == [
        (0, [2, 5], 6),
        (1, [2, 5], 8),
        (2, [7, 9], 10),
        (3, [3, 4], 1),
        (4, [2, 5], 6),
    ]
    csft = prepared.csft.to_pandas()
    assert [list(h) for h in csft["history_titles"]] == [["A"], ["A"]]
    assert list(csft["target_title"]) == ["B", "F"]
    d = prepared.dropped
    assert (d["items_without_title"], d["interactions_without_title"]) == (1, 1)
    assert (d["duplicate_events"], d["short_users"]) == (1, 1)


def test_write_and_load_roundtrip(tmp_path):
    ds = prepare(_raw(HAND_EVENTS, HAND_TITLES), tmp_path / "ds", ProtocolSettings(kcore=0, max_history=2))
    assert ds.num_items == 10 and ds.num_users == 5
    assert ds.titles[:3] == ["", "A", "B"]
    assert ds.manifest["counts"]["interactions"] == 17
    assert ds.manifest["dropped"]["duplicate_events"] == 1
    ds.verify()
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    with pytest.raises(FileExistsError):
        prepare(_raw(HAND_EVENTS, HAND_TITLES), tmp_path / "ds", ProtocolSettings(kcore=0))


def test_failed_prepare_leaves_nothing(tmp_path):
    with pytest.raises(ConfigError):
        prepare(_raw(HAND_EVENTS, HAND_TITLES), tmp_path / "ds", ProtocolSettings(kcore=50))
    assert list(tmp_path.iterdir()) == []


def test_temporal_split_uses_cutoffs():
    s = ProtocolSettings(kcore=0, split="temporal", cutoffs=(3, 5))
    prepared = apply_protocol(_raw(HAND_EVENTS, HAND_TITLES), s)
    seqs = prepared.sequences.set_index("user_key")
    # u1 events at 1,2,3,4: train <3 → 2, valid [3,5) → 2, test none
    assert (seqs.loc["u1", "n_train"], seqs.loc["u1", "n_valid"], len(seqs.loc["u1", "items"])) == (2, 2, 4)
    # u4 (2,2,9): train 2, valid 0, test 1
    assert (seqs.loc["u4", "n_train"], seqs.loc["u4", "n_valid"]) == (2, 0)
    test = _rows(prepared.examples["test"])
    assert all(len(h) > 0 for _, h, _ in test)


def test_temporal_needs_timestamps():
    with pytest.raises(ConfigError, match="timestamps"):
        apply_protocol(
            _raw(HAND_EVENTS, HAND_TITLES, has_time=False), ProtocolSettings(kcore=0, split="temporal")
        )


def test_shipped_split_must_be_chronological():
    presplit = pd.Series(["train"] * len(HAND_EVENTS))
    presplit[0] = "test"
    with pytest.raises(ConfigError, match="chronological"):
        apply_protocol(_raw(HAND_EVENTS, HAND_TITLES, presplit), ProtocolSettings(kcore=0, split="shipped"))


def test_kcore_is_iterative():
    # item z has 2 users; removing it drops u2 below 2, which then drops item y below 2.
    df = pd.DataFrame({"user": ["u1", "u1", "u2", "u2", "u3", "u3"], "item": ["y", "w", "y", "z", "w", "z"]})
    out = kcore_filter(df, 2)
    assert len(out) == 6  # already 2-core
    df2 = pd.concat([df, pd.DataFrame({"user": ["u4"], "item": ["q"]})])
    out2 = kcore_filter(df2, 2)
    assert "u4" not in set(out2["user"])


def _random_log(rng, users=60, items=40, events=900):
    u = rng.integers(0, users, events)
    i = np.minimum(rng.zipf(1.5, events), items) - 1
    t = rng.integers(0, 50, events)
    ev = [(f"u{a:03d}", f"i{b:03d}", int(c)) for a, b, c in zip(u, i, t)]
    titles = {f"i{b:03d}": f"Item {b}" for b in range(items)}
    return _raw(ev, titles)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kcore", [0, 3, 5])
def test_invariants_on_random_logs(seed, kcore):
    s = ProtocolSettings(kcore=kcore, max_history=4)
    p = apply_protocol(_random_log(np.random.default_rng(seed)), s)
    seqs = {
        int(u): (np.asarray(it), int(nt))
        for u, it, nt in zip(p.sequences["user"], p.sequences["items"], p.sequences["n_train"])
    }
    n_items = len(p.items)
    assert sorted(p.items["item_id"]) == list(range(1, n_items + 1))
    all_items = np.concatenate([s for s, _ in seqs.values()])
    assert set(all_items) == set(range(1, n_items + 1))
    if kcore:
        assert min(len(s) for s, _ in seqs.values()) >= kcore
        assert np.bincount(all_items)[1:].min() >= kcore
    for split, offset in (("valid", 2), ("test", 1)):
        rows = _rows(p.examples[split])
        assert len(rows) == len(seqs)
        for u, hist, target in rows:
            seq, _ = seqs[u]
            assert target == seq[-offset]
            assert hist == list(seq[: len(seq) - offset][-4:])
    held_out = {u: set(s[-2:]) for u, (s, _) in seqs.items()}
    for u, hist, target in _rows(p.csft):
        seq, n_train = seqs[u]
        assert target not in held_out[u] and not held_out[u] & set(hist)
        j = list(seq[:n_train]).index(target)
        assert hist == list(seq[max(0, j - 4) : j]) and 0 < len(hist) <= 4
