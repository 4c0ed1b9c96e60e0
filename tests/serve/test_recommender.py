"""Using a trained run: Recommender (also with new titles), `llm2rec recommend`, the web API and page."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time

import pytest
import torch

from llm2rec.errors import ConfigError
from llm2rec.serve.recommender import Recommender


def test_recommend_ranks_like_the_saved_model(tiny_run):
    rec = Recommender.load(tiny_run, encoder="csft")
    history = [rec.titles[3], 7, rec.keys[9]]  # a title, an id (a number), a key
    top = rec.recommend(history, k=5)
    assert len(top) == 5 and [r.score for r in top] == sorted((r.score for r in top), reverse=True)
    # The same scores as the model's own forward pass over the catalogue.
    logits = rec.model(torch.tensor([[3, 7, 9]]), torch.tensor([3]))[0]
    best = torch.topk(logits, 5)
    assert [r.item_id for r in top] == (best.indices + 1).tolist()
    assert [r.score for r in top] == pytest.approx(best.values.tolist(), rel=1e-5)
    assert top[0].as_tuple() == (top[0].item_id, rec.titles[top[0].item_id], top[0].score)
    excluded = rec.recommend(history, k=rec.num_items, exclude_history=True)
    assert not {3, 7, 9} & {r.item_id for r in excluded[: rec.num_items - 3]}


def test_a_new_title_is_embedded_and_ranked_with_the_catalogue(tiny_run):
    rec = Recommender.load(tiny_run, encoder="csft")
    n = rec.num_items
    title = "Zorblax Ultra Q-999 Hover Board, Teal, Limited"
    ranking = rec.rank([rec.titles[1], title], k=n + 1)
    assert [(e.kind, e.item_id) for e in ranking.history] == [("title", 1), ("new", None)]
    assert ranking.new_titles == [title] and [r.title for r in ranking.items if r.new] == [title]
    assert rec.num_items == n  # ranked in its own request only
    added = rec.add_items(["Another Unseen Gadget X-1", "A Third Unseen Thing"])  # explicit: for good
    assert added == [n + 1, n + 2]
    everything = rec.recommend([1, 2], k=rec.num_items)
    assert {r.item_id for r in everything if r.new} == {n + 1, n + 2}
    # An added title is then a catalogue title (case and spacing ignored), not another new one.
    assert rec.read_history(["a third  UNSEEN thing"])[0].item_id == n + 2


def test_an_id_only_recommender_refuses_new_titles_and_bad_ids(tiny_run):
    rec = Recommender.load(tiny_run, encoder="id")
    assert len(rec.recommend([1, 2], k=4)) == 4
    with pytest.raises(ConfigError, match="ID-only"):
        rec.recommend(["a title nobody has seen"], k=3)
    with pytest.raises(ConfigError, match="not in 1.."):
        rec.recommend([10_000])
    with pytest.raises(ConfigError, match="no llm2rec"):
        Recommender.load(tiny_run, encoder="llm2rec")


def test_the_recommend_command(tiny_run, tmp_path):
    from typer.testing import CliRunner

    from llm2rec.cli import app

    new = tmp_path / "new.txt"
    new.write_text("Brand New Item One\nBrand New Item Two\n")
    k = Recommender.load(tiny_run, encoder="csft").num_items + 2
    done = CliRunner().invoke(app, ["recommend", str(tiny_run), "--encoder", "csft", "--history", "id:1",
                                    "--history", "id:2", "--k", str(k), "--add-items", str(new)])  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "Brand New Item One" in done.output and "(new)" in done.output


def test_the_web_api(client):
    rows = client.get("/api/rows").json()
    assert rows["encoders"] == ["csft", "id"] and rows["items"] > 0
    users = client.get("/api/users?limit=3").json()
    assert len(users) == 3 and users[0]["target_title"]
    out = client.post("/api/recommend", json={"history": users[0]["history"], "k": 4}).json()
    assert set(out["encoders"]) == {"csft", "id"} and all(
        len(v["items"]) == 4 for v in out["encoders"].values()
    )
    assert [h["item_id"] for h in out["history"]] == users[0]["history"]
    new = client.post("/api/recommend", json={"history": ["An Unseen Title Z"], "k": 2}).json()
    assert "items" in new["encoders"]["csft"] and "ID-only" in new["encoders"]["id"]["error"]
    assert client.post("/api/recommend", json={"history": [1], "encoders": ["nope"]}).status_code == 404
    assert client.post("/api/recommend", json={"history": []}).status_code == 422
    near = client.get("/api/neighbours?item=1&k=3").json()
    assert list(near) == ["csft"] and len(near["csft"]) == 3 and near["csft"][0]["item_id"] != 1
    assert client.get("/api/neighbours?item=0").status_code == 404
    assert "llm2rec" in client.get("/").text


def _browser() -> str | None:
    return next((b for b in ("chromium", "chromium-browser", "google-chrome") if shutil.which(b)), None)


@pytest.mark.skipif(_browser() is None, reason="no Chromium on this machine (apt install chromium to run it)")
def test_the_page_shows_recommendations_in_a_real_browser(tiny_run):
    import uvicorn

    from llm2rec.serve.app import RunService, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(RunService(tiny_run)), host="127.0.0.1", port=port,
                                           log_level="warning"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def dom(query: str) -> str:
        return subprocess.run(
            [_browser(), "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=20000",
             "--dump-dom", f"http://127.0.0.1:{port}/{query}"],
            capture_output=True, text=True, timeout=120,
        ).stdout  # fmt: skip

    try:
        while not server.started:
            time.sleep(0.05)
        user, refused = dom("?user=0"), dom("?h=id:1&h=1984&k=1000")
    finally:
        server.should_exit = True
        thread.join(10)
    assert user.count('class="rec') >= 20  # two encoders' top 10, rendered by the page's script
    assert "<h2>csft</h2>" in user and "<h2>id</h2>" in user and "→ item id" in user
    assert 'class="error"' in refused and "k: Input should be less than or equal to 100" in refused


def test_a_moved_run_still_recommends_and_embeds_new_titles(tiny_run, tmp_path):
    """Every path a run stores is relative to it (issue 36): moved elsewhere, it loads, ranks and embeds
    with its own encoder, and reads nothing at the old place."""
    import shutil

    from llm2rec.serve.recommender import Recommender

    before = Recommender.load(tiny_run, encoder="csft").recommend(["a title nobody typed before"], k=5)
    moved = tmp_path / "elsewhere" / "run"
    shutil.move(str(tiny_run), str(moved))
    try:
        for encoder in ("id", "csft"):
            record = (moved / "seqrec" / f"{encoder}-sasrec" / "config.json").read_text()
            assert str(tiny_run) not in record, record
        rec = Recommender.load(moved, encoder="csft")
        after = rec.recommend(["a title nobody typed before"], k=5)
        assert [r.item_id for r in after] == [r.item_id for r in before]
        assert Recommender.load(moved, encoder="id").recommend(["id:1"], k=3)
    finally:
        shutil.move(str(moved), str(tiny_run))
