"""`llm2rec run` end to end on a tiny in-process model: killed in the middle of CSFT and re-run, it must
give exactly the table of an uninterrupted run; launched as two processes, it must train the same CSFT."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

pytestmark = pytest.mark.slow

CONFIG = {
    "dataset": {"format": "builtin", "num_users": 200, "num_items": 100},
    "preset": "cpu",
    # micro-batches of half the effective batch: the same settings also run as two processes
    "csft": {"max_steps": 40, "save_every": 2, "eval_every": 20, "micro_batch": 2, "batch_size": 4,
             "warmup_steps": 2, "generation_samples": 0, "eval_samples": 16, "progress": False},
    "mntp": {"max_steps": 2, "micro_batch": 8, "progress": False},
    "contrastive": {"max_steps": 2, "batch_size": 8, "micro_batch": 4, "progress": False},
    "embed": {"batch_size": 16},
    "encoders": ["id", "llm2rec"],
    "seqrec": {"models": ["sasrec"], "seeds": [1], "options": {"epochs": 2}},
}  # fmt: skip


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    root = tmp_path_factory.mktemp("e2e")
    tok = make_tiny_tokenizer()
    save_pretrained_atomic(make_tiny_model("llama", tok), tok, root / "model")
    path = root / "run.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "model": str(root / "model")}))
    return path


def _cmd(config, out):
    return [sys.executable, "-m", "llm2rec.cli", "run", str(config), "--out", str(out)]


def _env():
    return {**os.environ, "OMP_NUM_THREADS": "1", "LLM2REC_TORCH_THREADS": "1"}


def _entries(run_dir):
    results = json.loads((run_dir / "results.json").read_text())
    return {(e["encoder"], e["recommender"]): e["metrics"] for e in results["entries"]}


@pytest.fixture(scope="module")
def straight(tiny_config, tmp_path_factory):
    """One uninterrupted run, the reference of both tests."""
    out = tmp_path_factory.mktemp("straight") / "run"
    done = subprocess.run(_cmd(tiny_config, out), capture_output=True, text=True, env=_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert (out / "report.md").is_file() and (out / "report.html").is_file()
    return out


def test_killed_run_resumes_to_the_same_table(tiny_config, straight, tmp_path):

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _cmd(tiny_config, killed), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()
    )
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            work = killed / "csft.work" / "checkpoints"
            if work.is_dir() and any(p.name.startswith("step-") for p in work.iterdir()):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.01)
    finally:
        proc.wait(timeout=60)
    state = json.loads((killed / "pipeline.json").read_text())
    assert state["csft"]["status"] == "started", "the run was not interrupted inside CSFT"
    assert not (killed / "csft" / "config.json").exists()

    again = subprocess.run(_cmd(tiny_config, killed), capture_output=True, text=True, env=_env())
    assert again.returncode == 0, again.stderr[-3000:]
    assert "resum" in again.stderr.lower()
    a, b = _entries(straight), _entries(killed)
    assert a.keys() == b.keys()
    for key in a:
        for metric, value in a[key].items():
            assert b[key][metric]["mean"] == pytest.approx(value["mean"], abs=1e-6), (key, metric)


def test_two_processes_train_the_same_csft_and_finish_the_table(tiny_config, straight, tmp_path):
    from safetensors.torch import load_file

    two = tmp_path / "two"
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd = launch + _cmd(tiny_config, two)[1:]  # "-m llm2rec.cli run ..." under the launcher
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for stage in ("csft", "mntp", "contrastive"):
        assert json.loads((two / stage / f"{stage}.json").read_text())["processes"] == 2
    # CSFT has no dropout here: DDP over two processes with the same effective batch is the same training
    one_w, two_w = (
        load_file(straight / "csft" / "model.safetensors"),
        load_file(two / "csft" / "model.safetensors"),
    )
    assert max((one_w[k] - two_w[k]).abs().max().item() for k in one_w) < 1e-4
    # (MNTP masks and contrastive dropout draw per process, so later stages differ; the table is complete)
    assert _entries(two).keys() == _entries(straight).keys()
    assert json.loads((two / "embeddings" / "llm2rec.json").read_text())["processes"] == 2
    state = json.loads((two / "pipeline.json").read_text())
    assert all(record["status"] == "done" for record in state.values())
