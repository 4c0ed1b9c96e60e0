"""The page's own script (page.html) against the real server, in Node with a minimal DOM stand-in: it
shows the API's refusal message, and how each entry was read. (A real browser: test_recommender.py.)"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from llm2rec.serve.app import MAX_K, PAGE

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="no Node.js on this machine")

# The page's script with document / location / fetch stood in for; prints the elements' contents.
HARNESS = r"""
const vm = require("vm");
const [page, base, search] = process.argv.slice(2);
const html = require("fs").readFileSync(page, "utf8");
const script = html.slice(html.indexOf("<script>") + 8, html.lastIndexOf("</script>"));
const els = {};
const el = (id) => els[id] ??= {innerHTML: "", textContent: "", value: "", checked: false, max: "",
  style: {}, dataset: {}, classList: {add() {}, remove() {}}};
const context = {document: {getElementById: el, querySelectorAll: () => []}, location: {search},
  URLSearchParams, JSON, Number, String, Object, Error,
  fetch: (url, options) => fetch(base + url, options)};
el("k").value = "10";  // the input's value in page.html
vm.runInNewContext(script, context);
const started = Date.now();
const poll = setInterval(() => {  // until the answer is shown (or 20 s)
  const results = el("results").innerHTML;
  if ((results && !results.includes("ranking")) || Date.now() - started > 20000) {
    clearInterval(poll);
    const out = {};
    for (const [id, e] of Object.entries(els)) out[id] = {html: e.innerHTML, text: e.textContent, value: e.value};
    console.log(JSON.stringify(out));
  }
}, 20);
"""


@pytest.fixture(scope="module")
def server(tiny_run):
    import uvicorn

    from llm2rec.serve.app import RunService, create_app

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(
        create_app(RunService(tiny_run)), host="127.0.0.1", port=port, log_level="warning"
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(10)


def _page(server: str, search: str, tmp_path: Path) -> dict:
    harness = tmp_path / "harness.js"
    harness.write_text(HARNESS, encoding="utf-8")
    done = subprocess.run(["node", str(harness), str(PAGE), server, search], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_the_page_shows_the_apis_refusal(server, tmp_path):
    shown = _page(server, f"?h=id:1&k={MAX_K + 1}", tmp_path)
    assert 'class="error"' in shown["results"]["html"]
    assert f"k: Input should be less than or equal to {MAX_K}" in shown["results"]["html"]
    shown = _page(server, "?h=key:NO-SUCH-KEY", tmp_path)
    assert "no item key" in shown["results"]["html"] and "NO-SUCH-KEY" in shown["results"]["html"]
    assert "Limits: 200 entries" in shown["limits"]["text"]


def test_the_page_shows_how_each_entry_was_read(server, tmp_path):
    shown = _page(server, "?h=id:2&h=1984&k=5", tmp_path)
    reading = shown["reading"]["html"]
    assert "id:2 → item id 2" in reading and "1984 → new title (this request only)" in reading
    results = shown["results"]["html"]
    assert results.count('class="rec') == 5 and 'class="rec new"' in results  # csft's top 5, 1984 among them
    assert "ID-only recommender" in results  # the id row cannot rank a new title, and says so
