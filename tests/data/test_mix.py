"""The training union of a multi-dataset run (llm2rec.data.mix), on hand-made datasets checked exactly."""

from __future__ import annotations

import pandas as pd
import pytest

from llm2rec.data.mix import build_training_union, held_out_events
from llm2rec.data.protocol import ProtocolSettings, prepare
from llm2rec.data.schema import RawLog
from llm2rec.errors import ConfigError


def _dataset(tmp_path, name, sequences: dict[str, list[str]]):
    """A prepared leave-one-out dataset from {user: [items in time order]}."""
    rows = [(u, i, t) for u, items in sequences.items() for t, i in enumerate(items)]
    interactions = pd.DataFrame(rows, columns=["user", "item", "timestamp"]).assign(rating=float("nan"))
    titles = sorted({i for items in sequences.values() for i in items})
    items = pd.DataFrame({"item": titles, "title": [f"{name} title {i}" for i in titles]})
    raw = RawLog(interactions, items, source_files=[], format="test")
    return prepare(raw, tmp_path / name, ProtocolSettings(kcore=0))


@pytest.fixture
def two(tmp_path):
    # User u1 and item x4 occur in both: (u1, x4) is a *test* event of a, and a training event of b.
    a = _dataset(tmp_path, "a", {"u1": ["x1", "x2", "x3", "x4"], "u2": ["x3", "x1", "x2", "x4"]})
    b = _dataset(tmp_path, "b", {"u1": ["x4", "y1", "y2", "y3", "y4"], "u3": ["y1", "y2", "y3", "y4"]})
    return a, b


def _events(dataset, part: str) -> set[tuple[str, str, str]]:
    """(user key, item key, part) of every event of ``dataset``'s training part (or held-out part)."""
    keys = dict(zip(dataset.items["item_id"], dataset.items["key"], strict=True))
    out = set()
    for user, items, n in zip(dataset.sequences["user_key"], dataset.sequences["items"],
                              dataset.sequences["n_train"], strict=True):  # fmt: skip
        chosen = items[:n] if part == "train" else items[n:]
        out |= {(user, keys[i], part) for i in chosen}
    return out


def test_the_union_holds_exactly_the_training_parts_less_held_out_events(tmp_path, two):
    a, b = two
    union = build_training_union({"a": a, "b": b}, [a, b], tmp_path / "u")
    # Dataset by dataset, each in its own id order (first appearance: x1 and x3 at time 0, then x2).
    assert union.items["key"].tolist() == ["a:x1", "a:x3", "a:x2", "b:y1", "b:y2"]
    assert union.items["source"].tolist() == ["a", "a", "a", "b", "b"]
    # b's (u1, x4) is a's test event: removed, also though it is a training event of b.
    assert _events(union, "train") == {
        ("a:u1", "a:x1", "train"), ("a:u1", "a:x2", "train"), ("a:u2", "a:x3", "train"),
        ("a:u2", "a:x1", "train"), ("b:u1", "b:y1", "train"), ("b:u1", "b:y2", "train"),
        ("b:u3", "b:y1", "train"), ("b:u3", "b:y2", "train"),
    }  # fmt: skip
    assert union.manifest["mix"]["b"]["held_out_events_removed"] == 1
    titles = union.titles
    pairs = {(tuple(r.history_titles), r.target_title) for r in union.csft_pairs().itertuples()}
    assert pairs == {
        (("a title x1",), "a title x2"),
        (("a title x3",), "a title x1"),
        (("b title y1",), "b title y2"),
    }
    # Valid rows: the targets after each kept training part that are union items (b's y3 is not).
    valid = {
        (tuple(titles[i] for i in r.history), titles[r.target]) for r in union.split("valid").itertuples()
    }
    assert valid == {
        (("a title x1", "a title x2"), "a title x3"),
        (("a title x3", "a title x1"), "a title x2"),
    }
    assert len(union.split("test")) == 0


def test_no_held_out_event_of_any_evaluation_dataset_is_a_training_input(tmp_path, two):
    a, b = two
    union = build_training_union({"a": a, "b": b}, [a, b], tmp_path / "u")
    held = held_out_events(a) | held_out_events(b)
    key = dict(zip(union.items["item_id"], union.items["key"].str.split(":", n=1).str[1], strict=True))
    user = union.sequences["user_key"].str.split(":", n=1).str[1].tolist()
    trained = {
        (user[u], key[i])
        for u, i in zip(union.csft_pairs()["user"], union.csft_pairs()["target"], strict=True)
    }
    trained |= {(user[r.user], key[i]) for r in union.csft_pairs().itertuples() for i in r.history}
    trained |= {(user[r.user], key[r.target]) for r in union.split("train").itertuples()}
    trained |= {(k[0].split(":", 1)[1], k[1].split(":", 1)[1]) for k in _events(union, "train")}
    assert trained and not trained & held


def test_weights_give_each_dataset_its_share_of_the_pairs(tmp_path):
    a = _dataset(tmp_path, "a", {f"u{k}": ["x1", "x2", "x3", "x4", "x5"] for k in range(6)})  # 2 pairs each
    b = _dataset(tmp_path, "b", {"v1": ["y1", "y2", "y3", "y4"]})  # 1 pair
    plain = build_training_union({"a": a, "b": b}, [a, b], tmp_path / "plain")
    assert (
        plain.manifest["mix"]["a"]["csft_pairs_used"] == 12
        and plain.manifest["mix"]["b"]["csft_pairs_used"] == 1
    )
    equal = build_training_union({"a": a, "b": b}, [a, b], tmp_path / "eq", weights={"a": 1, "b": 1}, seed=3)
    shares = {n: equal.manifest["mix"][n]["csft_pairs_used"] for n in ("a", "b")}
    assert shares["a"] == shares["b"] and abs(sum(shares.values()) - 13) <= 1
    with pytest.raises(ConfigError, match="every training dataset"):
        build_training_union({"a": a, "b": b}, [a], tmp_path / "bad", weights={"a": 1})


def test_user_sample_is_seeded_and_counted(tmp_path):
    from llm2rec.config import dataset_spec
    from llm2rec.data.prepare import prepare_from_spec

    spec = dataset_spec(format="builtin", num_users=300, num_items=100, sample_users=120, seed=4, kcore=0)
    one = prepare_from_spec(spec, tmp_path / "one")
    two = prepare_from_spec(spec, tmp_path / "two")
    assert one.num_users == 120 and one.sequences["user_key"].tolist() == two.sequences["user_key"].tolist()
    assert one.manifest["dropped"]["user_sample"] == {
        "asked": 120,
        "seed": 4,
        "users_before": 300,
        "users_dropped": 180,
    }


def test_the_stage_probe_reads_a_union_without_a_test_split(tmp_path, two):
    """MNTP and the contrastive stage choose checkpoints by a knn probe on valid; the union has no test
    split (the first multi-dataset run stopped at MNTP with 'the test split has no examples')."""
    from llm2rec.llm.tiny import make_tiny_tokenizer
    from llm2rec.train.probe import ValidKnnProbe

    a, b = two
    union = build_training_union({"a": a, "b": b}, [a, b], tmp_path / "u")
    probe = ValidKnnProbe(union, make_tiny_tokenizer(), max_length=16)
    assert len(probe.valid) == len(union.split("valid")) == 2
