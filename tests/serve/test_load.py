"""The real server under concurrent load (issue 35 §3): ``llm2rec serve`` in its own process on a free
loopback port, 8 clients × 200 requests mixing catalogue histories with each client's own new titles
(benchmarks/serve_load.py's machinery, bounded in count and time). Every answer must be the one a fresh,
single-threaded recommender gives for that request, no client may ever see another client's new title,
the catalogue must not grow and the server's memory must stay put."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from llm2rec.serve.history import norm_title
from llm2rec.serve.recommender import Recommender

CLIENTS, REQUESTS, NEW_PER_CLIENT = 8, 200, 3
TIME_LIMIT_S = 30  # the timed part stops by itself; the whole test must stay under 60 s
MEMORY_MARGIN = 24 * 2**20  # bytes the server's RSS may grow over the timed part


def _load_benchmark():
    """benchmarks/serve_load.py as a module (registered: its dataclasses look their module up)."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_load.py"
    spec = importlib.util.spec_from_file_location("serve_load", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("serve_load", module)
    spec.loader.exec_module(sys.modules["serve_load"])
    return sys.modules["serve_load"]


def _expected(recs: dict, body: dict):
    """What a fresh recommender answers to ``body``: per encoder the full ranking, or an error."""
    out = {}
    for enc in body.get("encoders") or list(recs):
        rec = recs[enc]
        try:
            new = {norm_title(e.title) for e in rec.read_history(body["history"]) if e.kind == "new"}
            out[enc] = rec.rank(body["history"], rec.num_items + len(new), body["exclude_history"])
        except Exception as exc:  # an ID-only row and a new title
            out[enc] = str(exc)
    return out


def _check(answer: dict, want: dict, k: int) -> None:
    assert list(answer["encoders"]) == list(want)
    for enc, expected in want.items():
        got = answer["encoders"][enc]
        if isinstance(expected, str):
            assert got == {"error": expected}
            continue
        assert answer["history"] == [e.as_dict() for e in expected.history]
        top = expected.items[:k]
        by_id = {r.item_id: r for r in expected.items}
        assert len(got["items"]) == len(top)
        for g, w in zip(got["items"], top, strict=True):  # the same scores in the same order (ties aside)
            ref = by_id[g["item_id"]]
            assert (g["title"], g["new"]) == (ref.title, ref.new)
            assert g["score"] == pytest.approx(ref.score, rel=1e-4, abs=1e-4)
            assert g["score"] == pytest.approx(w.score, rel=1e-4, abs=1e-4)


def test_the_server_under_concurrent_load(tiny_run, tmp_path):
    bench = _load_benchmark()
    started = time.monotonic()
    recs = {enc: Recommender.load(tiny_run, encoder=enc) for enc in ("csft", "id")}
    with bench.start_server(tiny_run, tmp_path / "server.log", startup_s=40) as server:
        rows, users = bench.fetch_catalogue(server.url)
        plan = bench.make_plan(users, rows["encoders"], CLIENTS, per_client=12, new_per_client=NEW_PER_CLIENT)
        warm = bench.run_clients(server.url, plan, requests=12)  # every body once: arenas, caches, threads
        before = server.rss()
        result = bench.run_clients(server.url, plan, REQUESTS, seconds=TIME_LIMIT_S)
        after = server.rss()
        final = bench.run_clients(
            server.url, [[{"history": [1], "k": rows["items"], "encoders": ["csft"]}]], 1
        )
        rows_after, _ = bench.fetch_catalogue(server.url, count=1)
    summary = bench.summarise(result)
    print(json.dumps({**summary, "rss_mib": [before / 2**20, after / 2**20],
                      "test_wall_s": time.monotonic() - started}))  # fmt: skip
    assert not warm.failures and not result.failures, (warm.failures + result.failures)[:3]
    assert len(warm.records) == CLIENTS * 12 and all(r.status == 200 for r in warm.records)
    assert summary["requests"] == CLIENTS * REQUESTS and summary["non_200"] == 0
    expected = {
        (c, b): _expected(recs, body) for c, bodies in enumerate(plan) for b, body in enumerate(bodies)
    }
    for r in result.records:
        body = plan[r.client][r.body]
        _check(r.answer, expected[r.client, r.body], body["k"])
        text = json.dumps(r.answer)
        own = set(bench.new_titles_of(r.client, NEW_PER_CLIENT))
        assert all(
            i["title"] in own for v in r.answer["encoders"].values() for i in v.get("items", []) if i["new"]
        )
        others = [f"Client{c:02d}" for c in range(CLIENTS) if c != r.client]
        assert not any(marker in text for marker in others), f"client {r.client} saw {text}"
    # The catalogue did not grow: a full ranking has no new item, the row count is the same.
    (last,) = final.records
    assert last.status == 200 and not any(i["new"] for i in last.answer["encoders"]["csft"]["items"])
    assert rows_after["items"] == rows["items"]
    assert after - before <= MEMORY_MARGIN, f"server RSS grew by {(after - before) / 2**20:.1f} MiB"
    log = server.log.read_text(errors="replace")
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert time.monotonic() - started < 60
