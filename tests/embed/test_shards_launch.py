"""Extraction under a launcher (issue 37 §2): a two-process extraction killed after a shard finished
resumes without encoding that shard again and gives a one-process run's vectors; two "nodes" that share
the run directory but not a temporary directory give the same file.

Processes are started by ``torch.distributed.run`` on CPU (gloo), through tests/embed/embed_worker.py, which
runs ``llm2rec embed`` with test hooks (which shards a process encodes, a process that dies at a shard).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.embed.test_extract import tiny_titles, write_tiny_dataset
from tests.launch import free_port

pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("embed_worker.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    from llm2rec.data.vectors import read_item_vectors
    from llm2rec.embed.extract import embed_items
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.bidirectional import enable_bidirectional
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    root = tmp_path_factory.mktemp("launch")
    tokenizer = make_tiny_tokenizer()
    model = enable_bidirectional(make_tiny_model("qwen2", tokenizer, seed=7))
    encoder = save_pretrained_atomic(model, tokenizer, root / "encoder")
    dataset = write_tiny_dataset(
        root / "ds", [t + " and more" * (i % 3) for i, t in enumerate(tiny_titles(40))]
    )
    one = read_item_vectors(embed_items(str(encoder), dataset, root / "one.npy", show_progress=False))[0]
    return encoder, dataset, one


def _env(**extra) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LLM2REC_TORCH_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    return {**env, **extra}


def _start(args: list, env: dict) -> subprocess.Popen:
    # Own process group, so a hang kills the workers too, not only the launcher.
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)  # fmt: skip


def _finish(proc: subprocess.Popen, timeout: int = 240) -> tuple[int, str]:
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    return proc.returncode, stderr


def _embed_args(encoder, dataset, out, *more) -> list[str]:
    return [str(WORKER), "embed", "--encoder", str(encoder), "--dataset", str(dataset), "--out", str(out),
            "--batch-size", "4", *more]  # fmt: skip


def test_killed_two_process_extraction_resumes_by_shard(inputs, tmp_path):
    from llm2rec.data.vectors import read_item_vectors

    encoder, dataset, one = inputs
    out, log, snapshot = tmp_path / "v.npy", tmp_path / "encoded.log", tmp_path / "snapshot.json"
    launch = ["--standalone", "--nproc_per_node", "2"]
    # 8 shards of 5 items; process 1 takes shards 1, 3, 5, 7 and dies (SIGKILL) as it starts shard 5
    args = _embed_args(encoder, dataset, out, "--shard-size", "5")
    code, err = _finish(
        _start([*launch, *args], _env(LLM2REC_TEST_ENCODE_LOG=str(log), LLM2REC_TEST_DIE_AT="1:5"))
    )
    assert code != 0 and not out.exists(), err[-3000:]
    work = tmp_path / "v.npy.work"
    finished = sorted(int(p.stem[-5:]) for p in work.glob("shard-*.json"))
    assert {1, 3} <= set(finished) and 5 not in finished and 7 not in finished, finished
    before = {p.name: p.stat().st_mtime_ns for p in work.glob("shard-*") if int(p.stem[-5:]) in finished}

    log.write_text("")
    env = _env(LLM2REC_TEST_ENCODE_LOG=str(log), LLM2REC_TEST_MERGE_SNAPSHOT=str(snapshot))
    code, err = _finish(_start([*launch, *args], env))
    assert code == 0, err[-3000:]
    encoded = sorted(int(line.split()[1]) for line in log.read_text().splitlines())
    assert encoded == sorted(set(range(8)) - set(finished))  # only what had not finished, each once
    seen = json.loads(snapshot.read_text())
    assert {name: seen[name] for name in before} == before  # the finished shards' files were not rewritten
    vectors, meta = read_item_vectors(out)
    np.testing.assert_allclose(vectors, one, atol=1e-5)
    assert meta["processes"] == 2 and meta["shards"] == 8 and not work.exists()


def test_two_nodes_with_their_own_tmpdir_share_the_run_dir(inputs, tmp_path):
    """Each "node" is a launcher of its own (``--nnodes 2 --node_rank i``), with its own TMPDIR."""
    from llm2rec.data.vectors import read_item_vectors

    encoder, dataset, one = inputs
    out = tmp_path / "run" / "v.npy"
    out.parent.mkdir()
    port = str(free_port())
    procs = []
    for node in (0, 1):
        tmp = tmp_path / f"tmp-node{node}"
        tmp.mkdir()
        launch = ["--nnodes", "2", "--node_rank", str(node), "--nproc_per_node", "1",
                  "--master_addr", "127.0.0.1", "--master_port", port]  # fmt: skip
        args = _embed_args(encoder, dataset, out)
        procs.append(_start([*launch, *args], _env(TMPDIR=str(tmp), TEMP=str(tmp), TMP=str(tmp))))
    results = [_finish(p) for p in procs]
    for code, err in results:
        assert code == 0, err[-3000:]
    vectors, meta = read_item_vectors(out)
    assert meta["processes"] == 2 and meta["shards"] == 2
    np.testing.assert_allclose(vectors, one, atol=1e-5)
    assert sorted(p.name for p in out.parent.iterdir()) == ["v.json", "v.npy"]  # the work dir is gone
    for node in (0, 1):  # nothing of the extraction went through a node's temporary directory
        assert not [p for p in (tmp_path / f"tmp-node{node}").rglob("*") if p.suffix in (".npy", ".json")]
