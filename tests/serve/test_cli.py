"""``llm2rec serve`` listens on loopback unless told otherwise (and then warns); ``llm2rec recommend``
reads history entries by the documented rule and adds a catalogue title only once."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from llm2rec.cli import app
from llm2rec.errors import ConfigError


@pytest.fixture()
def started(monkeypatch):
    """``llm2rec serve`` with the server itself stood in for: what it would have been started with."""
    import llm2rec.serve.app as serve_app

    calls = []
    monkeypatch.setattr(serve_app, "serve", lambda run_dir, **kw: calls.append(kw))
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.org"])
def test_serve_refuses_a_non_loopback_address_without_allow_remote(tmp_path, started, host):
    done = CliRunner().invoke(app, ["serve", str(tmp_path), "--host", host])
    assert done.exit_code != 0 and not started
    assert "--allow-remote" in done.output and "authentication" in done.output


def test_serve_with_allow_remote_warns_that_the_page_has_no_authentication(tmp_path, started):
    done = CliRunner().invoke(app, ["serve", str(tmp_path), "--host", "0.0.0.0", "--allow-remote"])
    assert done.exit_code == 0, done.output
    assert "no authentication" in done.output
    assert started == [{"host": "0.0.0.0", "port": 8000, "recommender": "sasrec", "dataset": None,
                        "allow_remote": True}]  # fmt: skip


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_serve_on_loopback_needs_no_flag(tmp_path, started, host):
    done = CliRunner().invoke(app, ["serve", str(tmp_path), "--host", host])
    assert done.exit_code == 0, done.output
    assert "no authentication" not in done.output and started[0]["host"] == host


def test_the_library_serve_refuses_a_remote_host_too(tmp_path):
    from llm2rec.serve.app import serve

    with pytest.raises(ConfigError, match="allow_remote"):
        serve(tmp_path, host="0.0.0.0")


def test_recommend_reads_a_bare_number_as_a_title_and_adds_a_known_title_once(tiny_run, tmp_path):
    from llm2rec.serve.recommender import Recommender

    rec = Recommender.load(tiny_run, encoder="csft")
    new = tmp_path / "new.txt"
    new.write_text(f"{rec.titles[5]}\nBrand New Item One\nbrand new item one\n")
    args = ["recommend", str(tiny_run), "--encoder", "csft", "--history", "1984", "--history", "id:2",
            "--k", str(rec.num_items + 2), "--add-items", str(new)]  # fmt: skip
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "1 new item added" in done.output and "1 already in the catalogue" in done.output
    assert "'1984' → new title" in done.output and "'id:2' → item id 2" in done.output
    # One added item and this request's "1984": k = catalogue + 2 is every candidate, no more.
    assert done.output.count("(new)") == 2
    too_many = CliRunner().invoke(app, [*args[:-4], "--k", str(rec.num_items + 2)])
    assert too_many.exit_code != 0 and "k must be in 1.." in str(too_many.exception)


def test_the_recommend_help_states_the_rule():
    done = CliRunner().invoke(app, ["recommend", "--help"], terminal_width=200)
    for word in ("id:", "key:", "title:", "never an item id"):
        assert word in done.output
