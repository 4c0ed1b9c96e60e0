"""Issue 35 §3, the web side: ``POST /api/recommend`` reads every entry by the documented rule, refuses
unbounded input with a 4xx and a message, and no request's new title reaches another request."""

from __future__ import annotations

import pytest

from llm2rec.serve.app import MAX_ENTRY_CHARS, MAX_HISTORY, MAX_K, MAX_NEW_TITLES


def _post(client, **body):
    return client.post("/api/recommend", json=body)


def _detail(response) -> str:
    assert 400 <= response.status_code < 500, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail  # one readable message, which the page shows as is
    return detail


def test_the_answer_says_how_each_entry_was_read(client):
    rows = client.get("/api/rows").json()
    assert rows["limits"] == {"history": MAX_HISTORY, "entry_chars": MAX_ENTRY_CHARS,
                              "new_titles": MAX_NEW_TITLES, "k": min(MAX_K, rows["items"])}  # fmt: skip
    out = _post(client, history=[3, "id:4", "1984"], k=3, encoders=["csft"]).json()
    assert [(h["kind"], h["item_id"]) for h in out["history"]] == [("id", 3), ("id", 4), ("new", None)]
    assert list(out["encoders"]) == ["csft"] and len(out["encoders"]["csft"]["items"]) == 3


def test_a_new_title_never_reaches_a_later_request(client):
    n = client.get("/api/rows").json()["items"]
    mine = _post(client, history=[1, "Secret Title Of User A"], k=n + 0, encoders=["csft"]).json()
    assert [h["kind"] for h in mine["history"]] == ["id", "new"]
    later = _post(client, history=[1], k=n, encoders=["csft"]).json()["encoders"]["csft"]["items"]
    assert len(later) == n and not any(r["new"] for r in later)
    assert "Secret Title Of User A" not in {r["title"] for r in later}
    assert client.get("/api/rows").json()["items"] == n


def test_exclude_history_over_the_api_masks_a_long_history(client):
    n = client.get("/api/rows").json()["items"]
    history = list(range(1, 13))
    out = _post(client, history=history, k=n, exclude_history=True, encoders=["csft", "id"]).json()
    for enc in ("csft", "id"):
        got = [r["item_id"] for r in out["encoders"][enc]["items"]]
        assert len(got) == n - 12 and not set(history) & set(got)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"history": list(range(1, 4)) * (MAX_HISTORY // 3 + 1)}, f"at most {MAX_HISTORY}"),
        ({"history": ["x" * (MAX_ENTRY_CHARS + 1)]}, f"at most {MAX_ENTRY_CHARS} characters"),
        ({"history": [1], "k": MAX_K + 1}, f"less than or equal to {MAX_K}"),
        ({"history": [1], "k": 0}, "greater than or equal to 1"),
        ({"history": [f"New Title {i}" for i in range(MAX_NEW_TITLES + 1)]}, f"at most {MAX_NEW_TITLES} new"),
        ({"history": []}, "at least 1"),
        ({"history": [10_000]}, "not in 1.."),
        ({"history": ["key:NO-SUCH-KEY"]}, "no item key"),
        ({"history": ["id:x"]}, "id:"),
        ({"history": [True]}, "history.0"),
        ({"history": [1.5]}, "history.0"),
        ({"history": ["  "]}, "empty"),
        ({"history": [1], "encoders": ["nope"]}, "no saved sasrec"),
        ({"history": [1], "surprise": 1}, "surprise"),
    ],
)
def test_unbounded_or_bad_input_is_refused_with_a_message(client, body, message):
    assert message in _detail(_post(client, **body))


def test_k_over_the_catalogue_is_refused(tiny_run):
    from fastapi.testclient import TestClient

    from llm2rec.serve.app import RunService, create_app

    service = RunService(tiny_run)
    n = service.data.num_items
    assert n < MAX_K  # the tiny catalogue: its size, not MAX_K, is the bound
    with TestClient(create_app(service)) as client:
        assert f"catalogue has {n} items" in _detail(_post(client, history=[1], k=n + 1))
        assert _post(client, history=[1], k=n).status_code == 200


def test_the_other_endpoints_are_bounded(client):
    n = client.get("/api/rows").json()["items"]
    assert client.get("/api/users?limit=1000").status_code == 422
    assert client.get("/api/users?offset=-1").status_code == 422
    assert "not in 1.." in _detail(client.get(f"/api/neighbours?item={n + 1}"))
    assert client.get("/api/neighbours?item=1&k=1000").status_code == 422


def test_an_id_only_row_says_it_cannot_rank_a_new_title(client):
    out = _post(client, history=["An Unseen Title Z"], k=2).json()
    assert len(out["encoders"]["csft"]["items"]) == 2 and "ID-only" in out["encoders"]["id"]["error"]
