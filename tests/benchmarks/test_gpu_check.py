"""benchmarks/gpu_check.py (issue 37 §3): its CPU dry run (--device cpu --tiny) runs every part that can run
without a GPU, writes every field of every part (null only with a reason) and exits 0; a failed check, a
part that raises and the time budget are each recorded, and the first two give a non-zero exit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from tests.benchmarks.conftest import REPO, load_benchmark

RUNS_ON_CPU = (
    "setup",
    "bidirectional",
    "csft@sdpa",
    "mntp@sdpa",
    "contrastive@sdpa",
    "extract@sdpa",
    "seqrec",
)
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
NEEDS_FLASH = ("csft@flash_attention_2", "mntp@flash_attention_2", "contrastive@flash_attention_2",
               "extract@flash_attention_2")  # fmt: skip


@pytest.fixture(autouse=True)
def _env_restored(monkeypatch):
    # main(--device cpu) hides CUDA from its process (CUDA_VISIBLE_DEVICES=""): undone after each test.
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES", ""))


@pytest.fixture(scope="module")
def gpu_check():
    return load_benchmark("gpu_check")


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    """The dry run as a user starts it, in its own process (its exit code, its own torch state)."""
    out = tmp_path_factory.mktemp("gpu_check")
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    result = json.loads((out / "gpu_check_tiny.json").read_text()) if done.returncode in (0, 1) else None
    return SimpleNamespace(done=done, result=result, seconds=seconds)


def _kind(name: str) -> str:
    base = name.split("@")[0]
    return "stage" if base in ("csft", "mntp", "contrastive") else base


def test_dry_run_passes_and_prints_a_summary(dry_run):
    assert dry_run.done.returncode == 0, dry_run.done.stdout + dry_run.done.stderr
    result = dry_run.result
    assert result["ok"] is True and result["exit_code"] == 0 and result["failed"] == []
    assert result["mode"] == "tiny" and result["machine"]["device"] == "cpu"
    assert "checks:" in dry_run.done.stdout and "OK; wrote" in dry_run.done.stdout
    assert result["wall_s"] < result["budget_s"]


def test_every_part_has_every_field_and_each_null_a_reason(gpu_check, dry_run):
    parts = dry_run.result["parts"]
    assert list(parts) == ["setup", "bidirectional", *[f"{s}@sdpa" for s in gpu_check.STAGES],
                           *[f"{s}@flash_attention_2" for s in gpu_check.STAGES],
                           "extract@sdpa", "extract@flash_attention_2", "seqrec"]  # fmt: skip
    for name, part in parts.items():
        expected = {*gpu_check.COMMON_FIELDS, *gpu_check.FIELDS[_kind(name)]}
        assert expected <= set(part), f"{name} lacks {expected - set(part)}"
    for name in RUNS_ON_CPU:
        part = parts[name]
        assert part["status"] == "ok", (name, part["reason"])
        assert part["checks"] and all(c["ok"] for c in part["checks"]), name
        nulls = {k for k, v in part.items() if v is None and k not in ("reason",)}
        assert nulls <= set(part["null_reasons"]), (
            f"{name}: null without a reason: {nulls - set(part['null_reasons'])}"
        )
        assert "peak_gpu_memory_gb" in part["null_reasons"]  # no CUDA here
    for name in NEEDS_FLASH:  # flash attention needs CUDA: skipped with the reason, not failed
        assert parts[name]["status"] == "skipped" and "CUDA" in parts[name]["reason"]
    assert {s["part"] for s in dry_run.result["skipped"]} == set(NEEDS_FLASH)


def test_measurements_are_there(dry_run):
    parts = dry_run.result["parts"]
    for stage in ("csft", "mntp", "contrastive"):
        part = parts[f"{stage}@sdpa"]
        assert part["tokens_per_s"] > 0 and part["step_s"] > 0 and part["mixed_precision"] == "bf16"
        assert part["steps"] == len(part["tokens_per_s_per_step"]) == len(part["step_s_per_step"]) + 1
        assert part["mfu"] is None and "mfu" in part["null_reasons"]  # no known peak for a CPU
    assert parts["mntp@sdpa"]["started_from"] == "csft@sdpa"
    assert parts["contrastive@sdpa"]["started_from"] == "mntp@sdpa"
    assert parts["extract@sdpa"]["encoder"] == "contrastive@sdpa"
    assert parts["extract@sdpa"]["titles_per_s"] > 0 and parts["extract@sdpa"]["dtype"] == "torch.bfloat16"
    assert (
        parts["seqrec"]["epochs"] == len(parts["seqrec"]["epoch_seconds"]) and parts["seqrec"]["epoch_s"] > 0
    )
    bidirectional = parts["bidirectional"]
    assert set(bidirectional["implementations"]) == {"eager", "sdpa", "flash_attention_2"}
    assert "skipped" in bidirectional["implementations"]["flash_attention_2"]
    sdpa = bidirectional["implementations"]["sdpa"]["cases"]
    assert set(sdpa) == {"no_padding", "right_padding", "left_padding"}
    assert all(c["min_rel_change_bidirectional"] > bidirectional["change_threshold"] for c in sdpa.values())


def test_a_check_that_fails_gives_a_non_zero_exit(gpu_check, tmp_path, capsys):
    # The injected failure leaves the sdpa model causal: the check itself must notice.
    code = gpu_check.main(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--parts", "bidirectional",
                           "--inject-failure", "bidirectional"])  # fmt: skip
    assert code == 1
    result = json.loads((tmp_path / "gpu_check_tiny.json").read_text())
    assert result["ok"] is False and result["exit_code"] == 1
    assert result["parts"]["bidirectional"]["status"] == "failed"
    failed = {c["check"] for c in result["failed"]}
    assert "sdpa: every position depends on later tokens" in failed
    assert "sdpa: matches eager within bf16 tolerance" in failed
    assert not any(name.startswith("eager") for name in failed)  # the eager model stayed bidirectional
    assert result["parts"]["seqrec"]["reason"] == "not selected (--parts)"
    assert "FAILED" in capsys.readouterr().out


def test_a_part_that_raises_is_a_failure_and_the_others_still_run(gpu_check, tmp_path):
    code = gpu_check.main(["--device", "cpu", "--tiny", "--out", str(tmp_path),
                           "--parts", "bidirectional,seqrec", "--inject-failure", "seqrec"])  # fmt: skip
    assert code == 1
    parts = json.loads((tmp_path / "gpu_check_tiny.json").read_text())["parts"]
    assert parts["seqrec"]["status"] == "error" and "injected" in parts["seqrec"]["reason"]
    assert parts["seqrec"]["traceback"]
    assert parts["bidirectional"]["status"] == "ok"


def test_the_budget_skips_parts_with_a_reason(gpu_check, tmp_path):
    code = gpu_check.main(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--budget", "0"])
    result = json.loads((tmp_path / "gpu_check_tiny.json").read_text())
    assert code == 0 and result["checks"] == []
    assert all(
        p["status"] == "skipped" and p["reason"].startswith("time budget") for p in result["parts"].values()
    )


def test_a_running_part_is_cut_at_the_budget(gpu_check, tmp_path):
    args = gpu_check.parse_args(["--device", "cpu", "--tiny", "--out", str(tmp_path), "--budget", "0.5"])
    check = gpu_check.Check(args)
    check.parts["setup"] = {"status": "ok"}
    started = time.perf_counter()
    gpu_check.run_part(check, "seqrec", "seqrec", lambda c: time.sleep(5))
    assert time.perf_counter() - started < 3
    assert check.parts["seqrec"]["status"] == "skipped"
    assert check.parts["seqrec"]["reason"].startswith("cut at the time budget")
    check.work.rmdir()
