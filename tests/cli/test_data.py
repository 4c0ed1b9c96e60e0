"""The data commands end to end, through the real entry point (errors become one line, exit code 2)."""

from __future__ import annotations

import json
import subprocess
import sys


def _llm2rec(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "llm2rec.cli", *map(str, args)], capture_output=True, text=True, cwd=cwd
    )


def test_builtin_prepare_stats_export(tmp_path):
    out = tmp_path / "ds"
    r = _llm2rec("prepare", "--format", "builtin", "--num-users", 300, "--num-items", 200, "--out", out)
    assert r.returncode == 0, r.stderr
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"]["format"] == "builtin" and manifest["settings"]["kcore"] == 5
    r = _llm2rec("data", "stats", out)
    assert r.returncode == 0 and "interactions" in r.stdout
    r = _llm2rec("export", out, tmp_path / "official")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "official" / "downstream" / "item_titles.json").is_file()


def test_user_errors_are_one_line(tmp_path):
    r = _llm2rec("prepare", "--format", "nope", "--input", tmp_path, "--out", tmp_path / "x")
    assert r.returncode == 2 and "unknown --format" in r.stderr and "Traceback" not in r.stderr
    r = _llm2rec(
        "prepare", "--format", "recbole", "--input", tmp_path / "missing.inter", "--out", tmp_path / "x"
    )
    assert r.returncode == 2 and "input not found" in r.stderr and "Traceback" not in r.stderr
    r = _llm2rec("data", "stats", tmp_path)
    assert r.returncode == 2 and "not a prepared dataset" in r.stderr
    assert not (tmp_path / "x").exists()


def test_bad_line_names_file_and_line(tmp_path):
    reviews = tmp_path / "Cat.jsonl"
    meta = tmp_path / "meta_Cat.jsonl"
    review = {"timestamp": 1588687728923, "rating": 5.0}
    lines = [
        json.dumps({"user_id": f"U{u}", "parent_asin": f"P{i}", **review}) for u in range(3) for i in range(3)
    ]
    reviews.write_text("\n".join(lines) + "\n{not json\n")
    meta.write_text(
        "".join(json.dumps({"parent_asin": f"P{i}", "title": f"Item {i}"}) + "\n" for i in range(3))
    )
    r = _llm2rec(
        "prepare", "--format", "amazon2023", "--input", reviews, meta, "--out", tmp_path / "x", "--kcore", 0
    )
    assert r.returncode == 2 and "Cat.jsonl:10" in r.stderr, r.stderr
    assert not (tmp_path / "x").exists()
    r = _llm2rec("prepare", "--format", "amazon2023", "--input", reviews, meta, "--out", tmp_path / "x",
                 "--kcore", 0, "--skip-bad-lines")  # fmt: skip
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert manifest["dropped"]["bad_lines"]["total"] == 1


def test_prepare_takes_set_like_every_command(tmp_path):
    out = tmp_path / "ds"
    r = _llm2rec("prepare", "--format", "builtin", "--num-users", 300, "--num-items", 200, "--out", out,
                 "--set", "kcore=3", "--set", "max_history=4")  # fmt: skip
    assert r.returncode == 0, r.stderr
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert settings["kcore"] == 3 and settings["max_history"] == 4
    r = _llm2rec("prepare", "--format", "builtin", "--out", tmp_path / "x", "--set", "kcroe=3")
    assert r.returncode == 2 and "kcroe" in r.stderr and "Traceback" not in r.stderr
