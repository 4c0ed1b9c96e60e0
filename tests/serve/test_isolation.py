"""Issue 35 §3, the library side: one request's new titles never reach another request, the catalogue
changes only through ``add_items``, ``exclude_history`` masks the whole history, and each kind of history
entry (id, key, title, new title) is read by one documented rule."""

from __future__ import annotations

import threading

import pytest
import torch

from llm2rec.errors import ConfigError
from llm2rec.serve.recommender import Recommender


@pytest.fixture()
def rec(tiny_run):
    return Recommender.load(tiny_run, encoder="csft")


def _catalogue_state(rec: Recommender):
    return rec.num_items, tuple(rec.titles), rec.table.shape, rec.table.data_ptr()


def test_a_new_title_lives_for_one_request_only(rec):
    before = _catalogue_state(rec)
    n = rec.num_items
    title = "Zorblax Ultra Q-999 Hover Board, Teal, Limited"
    top = rec.recommend([rec.titles[1], title], k=n + 1)
    mine = [r for r in top if r.new]
    assert [(r.item_id, r.title) for r in mine] == [(n + 1, title)]  # rankable in its own request
    assert _catalogue_state(rec) == before  # ...and nothing of it kept
    later = rec.recommend([rec.titles[1]], k=n)
    assert not any(r.new for r in later) and title not in {r.title for r in later}
    with pytest.raises(ConfigError, match="k must be"):
        rec.recommend([rec.titles[1]], k=n + 1)  # the catalogue did not grow


def test_the_same_new_title_twice_in_one_request_is_one_item(rec):
    n = rec.num_items
    top = rec.recommend(["Brand New Gizmo", 3, "brand  new GIZMO"], k=n + 1)
    assert [r.item_id for r in top if r.new] == [n + 1]
    with pytest.raises(ConfigError, match="k must be"):
        rec.recommend(["Brand New Gizmo", "brand  new GIZMO"], k=n + 2)


def test_a_new_title_ranks_as_it_would_once_added(tiny_run, rec):
    title = "A Gadget Nobody Has Seen, Mk II"
    local = rec.recommend([2, title, 5], k=rec.num_items + 1)
    added = Recommender.load(tiny_run, encoder="csft")
    (item,) = added.add_items([title])
    explicit = added.recommend([2, item, 5], k=added.num_items)
    assert [(r.item_id, r.title, r.new) for r in local] == [(r.item_id, r.title, r.new) for r in explicit]
    assert [r.score for r in local] == pytest.approx([r.score for r in explicit], rel=1e-5, abs=1e-6)


def test_add_items_is_explicit_and_deduplicates(rec):
    n = rec.num_items
    known = rec.titles[4]
    ids = rec.add_items([known, "Fresh Thing One", "  fresh thing ONE ", "Fresh Thing Two", known.upper()])
    assert ids == [4, n + 1, n + 1, n + 2, 4]
    assert rec.num_items == n + 2 and rec.titles[n + 1] == "Fresh Thing One"
    assert rec.add_items(["Fresh Thing Two"]) == [n + 2] and rec.num_items == n + 2
    everything = rec.recommend([1, 2], k=rec.num_items)
    assert {r.item_id for r in everything if r.new} == {n + 1, n + 2}
    entries = rec.read_history(["Fresh Thing One", f"id:{n + 2}"])
    assert [(e.kind, e.item_id) for e in entries] == [("title", n + 1), ("id", n + 2)]


def test_exclude_history_masks_every_item_of_a_long_history(rec):
    assert rec.dataset.max_history == 10
    history = list(range(1, 13))  # 12 items: longer than the model's input
    top = rec.recommend(history, k=rec.num_items, exclude_history=True)
    assert not set(history) & {r.item_id for r in top}
    assert len(top) == rec.num_items - 12  # the masked items are left out, not ranked last
    assert all(r.score != float("-inf") for r in top)


def test_the_three_kinds_of_history_entry(rec):
    key, title = rec.keys[9], rec.titles[3]
    entries = rec.read_history([7, "id:8", f"key:{key}", key, title, f"title:{title}", "1984", "title:7"])
    got = [(e.kind, e.item_id) for e in entries]
    assert got == [("id", 7), ("id", 8), ("key", 9), ("key", 9), ("title", 3), ("title", 3),
                   ("new", None), ("new", None)]  # fmt: skip
    assert entries[6].title == "1984"  # a bare number is a title, never an id
    assert rec.read_history([" id: 12 "])[0].item_id == 12
    for bad, message in [("id:0", "not in 1.."), ("id:abc", "id:"), ("key:NOPE", "no item key"),
                         ("", "empty"), ("title:", "empty"), (True, "not a history entry"),
                         (10_000, "not in 1..")]:  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            rec.read_history([bad])
    assert rec.read_history(["1984"])[0].kind == "new"
    rec.add_items(["1984"])  # an added title that looks like a number is still a title
    assert [(e.kind, e.item_id) for e in rec.read_history(["1984"])] == [("title", rec.num_items)]


def test_concurrent_requests_each_see_only_their_own_new_titles(rec):
    n = rec.num_items
    expected = {c: rec.recommend([c + 1, f"Client {c} private gadget"], k=n + 1) for c in range(8)}
    seen: dict[int, list] = {c: [] for c in range(8)}
    errors: list[BaseException] = []

    def client(c: int) -> None:
        try:
            for _ in range(15):
                seen[c].append(rec.recommend([c + 1, f"Client {c} private gadget"], k=n + 1))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and rec.num_items == n
    for c, answers in seen.items():
        assert len(answers) == 15
        for got in answers:
            assert {r.title for r in got if r.new} == {f"Client {c} private gadget"}
            assert [r.item_id for r in got] == [r.item_id for r in expected[c]]
            assert torch.allclose(torch.tensor([r.score for r in got]),
                                  torch.tensor([r.score for r in expected[c]]), rtol=1e-5, atol=1e-6)  # fmt: skip


FIRST_NEW_TITLES_AT_ONCE = r"""
import sys, threading
from llm2rec.serve.recommender import Recommender
recs = [Recommender.load(sys.argv[1], encoder="csft") for _ in range(4)]
assert "transformers.models.auto" not in sys.modules  # so the encoders' first loads meet
barrier, errors = threading.Barrier(len(recs)), []
def first_request(rec, i):
    barrier.wait()
    try:
        rec.rank([1, f"Thread {i} title"], k=3)
    except Exception as exc:
        errors.append(repr(exc))
threads = [threading.Thread(target=first_request, args=(r, i)) for i, r in enumerate(recs)]
[t.start() for t in threads]
[t.join() for t in threads]
print(errors)
sys.exit(1 if errors else 0)
"""


def test_several_recommenders_load_their_encoders_at_once(tiny_run):
    """A server holds one recommender per encoder; their first new titles may come at the same moment, in
    a process that has not imported transformers yet (whose lazy imports are not thread-safe)."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", FIRST_NEW_TITLES_AT_ONCE, str(tiny_run)],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-2000:]
