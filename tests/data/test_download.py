"""Downloads against a local HTTP server on 127.0.0.1 (never the real dataset server)."""

from __future__ import annotations

import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from llm2rec.data import download as dl
from llm2rec.data.download import DownloadError, download, remote_paths

CATEGORY = "All_Beauty"


class FixtureServer(ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes) with HTTP Range support, and records what was asked and sent."""

    daemon_threads = True

    def __init__(self, files: dict[str, bytes]):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files = files
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.bytes_sent = 0
        self.ignore_range = False
        self.truncate_to: int | None = None  # announce the full length but send only this many bytes

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/amazon_2023"


class RangeHandler(BaseHTTPRequestHandler):
    server: FixtureServer

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append((self.path, rng))
        data = srv.files.get(self.path.removeprefix("/amazon_2023/"))
        if data is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if match and not srv.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.truncate_to is not None:
            body = body[: srv.truncate_to]
        self.wfile.write(body)
        srv.bytes_sent += len(body)


def fixture_files() -> dict[str, bytes]:
    """Raw and benchmark files for All_Beauty; contents differ per file so mix-ups show."""
    files = {}
    for i, rel in enumerate(remote_paths(CATEGORY, "raw") + remote_paths(CATEGORY, "benchmark")):
        files[rel] = bytes((i * 7 + j * 13) % 256 for j in range(50_000 + 1_000 * i))
    return files


@pytest.fixture
def server():
    srv = FixtureServer(fixture_files())
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_raw_download_writes_both_files(server, tmp_path):
    paths = download(CATEGORY, "raw", tmp_path, base_url=server.base_url, progress=False)
    assert [p.name for p in paths] == ["All_Beauty.jsonl.gz", "meta_All_Beauty.jsonl.gz"]
    assert paths[0].read_bytes() == server.files["raw/review_categories/All_Beauty.jsonl.gz"]
    assert paths[1].read_bytes() == server.files["raw/meta_categories/meta_All_Beauty.jsonl.gz"]
    assert [r for _, r in server.requests] == [None, None]
    assert not list(tmp_path.glob("*.part"))


def test_benchmark_download_fetches_three_splits(server, tmp_path):
    paths = download(CATEGORY, "benchmark", tmp_path, base_url=server.base_url, progress=False)
    assert [p.name for p in paths] == [f"All_Beauty.{s}.csv.gz" for s in ("train", "valid", "test")]
    assert [path for path, _ in server.requests] == [
        f"/amazon_2023/benchmark/5core/last_out_w_his/All_Beauty.{s}.csv.gz"
        for s in ("train", "valid", "test")
    ]
    for p in paths:
        assert p.read_bytes() == server.files[f"benchmark/5core/last_out_w_his/{p.name}"]


def test_resume_requests_only_the_rest(server, tmp_path):
    rel = "raw/review_categories/All_Beauty.jsonl.gz"
    full = server.files[rel]
    (tmp_path / "All_Beauty.jsonl.gz.part").write_bytes(full[:12_345])
    dl.fetch(f"{server.base_url}/{rel}", tmp_path / "All_Beauty.jsonl.gz", progress=False)
    assert server.requests == [(f"/amazon_2023/{rel}", "bytes=12345-")]
    assert server.bytes_sent == len(full) - 12_345
    assert (tmp_path / "All_Beauty.jsonl.gz").read_bytes() == full
    assert not (tmp_path / "All_Beauty.jsonl.gz.part").exists()


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    server.ignore_range = True
    rel = "raw/review_categories/All_Beauty.jsonl.gz"
    (tmp_path / "All_Beauty.jsonl.gz.part").write_bytes(b"garbage that must not survive")
    dl.fetch(f"{server.base_url}/{rel}", tmp_path / "All_Beauty.jsonl.gz", progress=False)
    assert (tmp_path / "All_Beauty.jsonl.gz").read_bytes() == server.files[rel]


def test_part_file_larger_than_remote_is_discarded(server, tmp_path):
    rel = "raw/review_categories/All_Beauty.jsonl.gz"
    (tmp_path / "All_Beauty.jsonl.gz.part").write_bytes(b"x" * (len(server.files[rel]) + 10))
    dl.fetch(f"{server.base_url}/{rel}", tmp_path / "All_Beauty.jsonl.gz", progress=False)
    assert (tmp_path / "All_Beauty.jsonl.gz").read_bytes() == server.files[rel]
    assert [r for _, r in server.requests][0] is not None  # it did try to resume first


def test_complete_part_file_is_finished_without_downloading(server, tmp_path):
    rel = "raw/review_categories/All_Beauty.jsonl.gz"
    (tmp_path / "All_Beauty.jsonl.gz.part").write_bytes(server.files[rel])
    dl.fetch(f"{server.base_url}/{rel}", tmp_path / "All_Beauty.jsonl.gz", progress=False)
    assert server.bytes_sent == 0
    assert (tmp_path / "All_Beauty.jsonl.gz").read_bytes() == server.files[rel]


def test_short_response_is_an_error_then_resumes(server, tmp_path):
    server.truncate_to = 20_000
    with pytest.raises(DownloadError, match="announced .*resume"):
        download(CATEGORY, "raw", tmp_path, base_url=server.base_url, progress=False)
    assert not (tmp_path / "All_Beauty.jsonl.gz").exists()
    assert (tmp_path / "All_Beauty.jsonl.gz.part").stat().st_size == 20_000

    server.truncate_to = None
    server.requests.clear()
    download(CATEGORY, "raw", tmp_path, base_url=server.base_url, progress=False)
    assert server.requests[0][1] == "bytes=20000-"
    assert (tmp_path / "All_Beauty.jsonl.gz").read_bytes() == server.files[
        "raw/review_categories/All_Beauty.jsonl.gz"
    ]


def test_not_found_is_a_clear_error(server, tmp_path):
    del server.files["raw/meta_categories/meta_All_Beauty.jsonl.gz"]
    with pytest.raises(DownloadError, match=r"meta_All_Beauty\.jsonl\.gz: HTTP 404"):
        download(CATEGORY, "raw", tmp_path, base_url=server.base_url, progress=False)
    assert not list(tmp_path.glob("meta_*"))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_offline_is_a_clear_error(tmp_path):
    url = f"http://127.0.0.1:{_closed_port()}/amazon_2023"
    with pytest.raises(DownloadError, match="cannot reach .*offline") as info:
        download(CATEGORY, "raw", tmp_path, base_url=url, progress=False, timeout=5)
    assert "\n" not in str(info.value)
    assert not list(tmp_path.iterdir())


def test_base_url_from_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv(dl.BASE_URL_ENV, server.base_url)
    download(CATEGORY, "raw", tmp_path, progress=False)
    assert len(server.requests) == 2


def test_existing_file_is_kept_without_a_request(server, tmp_path):
    (tmp_path / "All_Beauty.jsonl.gz").write_bytes(b"already here")
    download(CATEGORY, "raw", tmp_path, base_url=server.base_url, progress=False)
    assert [p for p, _ in server.requests] == ["/amazon_2023/raw/meta_categories/meta_All_Beauty.jsonl.gz"]
    assert (tmp_path / "All_Beauty.jsonl.gz").read_bytes() == b"already here"


def test_remote_paths_follow_the_published_layout():
    assert remote_paths("Video_Games") == [
        "raw/review_categories/Video_Games.jsonl.gz",
        "raw/meta_categories/meta_Video_Games.jsonl.gz",
    ]
    assert remote_paths("Baby_Products", "benchmark", "0core/rating_only") == [
        "benchmark/0core/rating_only/Baby_Products.csv.gz"
    ]
    assert remote_paths("Video_Games", "benchmark", "5core/timestamp_w_his")[2] == (
        "benchmark/5core/timestamp_w_his/Video_Games.test.csv.gz"
    )


def test_category_spelling_is_forgiven_or_explained():
    assert dl.resolve_category("video games") == "Video_Games"
    assert dl.resolve_category("MOVIES_AND_TV") == "Movies_and_TV"
    with pytest.raises(DownloadError, match="did you mean Video_Games"):
        dl.resolve_category("Video_Game")
    with pytest.raises(DownloadError, match="unknown Amazon 2023 category"):
        dl.resolve_category("Spaceships")


def test_bad_kind_variant_and_missing_5core_are_errors():
    with pytest.raises(DownloadError, match="unknown kind"):
        remote_paths("Video_Games", "images")
    with pytest.raises(DownloadError, match="unknown benchmark variant"):
        remote_paths("Video_Games", "benchmark", "3core/last_out")
    with pytest.raises(DownloadError, match="0core/last_out_w_his"):
        remote_paths("Appliances", "benchmark")


def test_download_error_is_a_user_error():
    from llm2rec.errors import USER_ERRORS

    assert issubclass(DownloadError, USER_ERRORS)


def test_default_base_url_is_the_public_server(tmp_path, monkeypatch):
    # No network: intercept the one function that would open a connection.
    monkeypatch.delenv(dl.BASE_URL_ENV, raising=False)
    seen = []
    monkeypatch.setattr(dl, "fetch", lambda url, target, **kw: seen.append(url) or Path(target))
    download("Video_Games", "raw", tmp_path, progress=False)
    assert seen[0] == (
        "https://mcauleylab.ucsd.edu/public_datasets/data/amazon_2023/raw/review_categories/Video_Games.jsonl.gz"
    )


def test_the_command_downloads_several_categories_in_one_call(tmp_path):
    from typer.testing import CliRunner

    from llm2rec.cli import app

    files = {rel: f"{rel}\n".encode() for c in (CATEGORY, "Baby_Products") for rel in remote_paths(c, "raw")}
    srv = FixtureServer(files)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        args = [
            "data",
            "download",
            CATEGORY,
            "Baby_Products",
            "--out",
            str(tmp_path),
            "--base-url",
            srv.base_url,
        ]
        done = CliRunner().invoke(app, args)
    finally:
        srv.shutdown()
        srv.server_close()
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "All_Beauty.jsonl.gz", "Baby_Products.jsonl.gz", "meta_All_Beauty.jsonl.gz", "meta_Baby_Products.jsonl.gz"]  # fmt: skip
    # A misspelt name is refused before any file is fetched.
    bad = CliRunner().invoke(app, ["data", "download", CATEGORY, "Babyy", "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and not (tmp_path / "x").exists()
