"""What the multi-process tests share: a free loopback port and a launcher run that cannot hang the suite."""

from __future__ import annotations

import os
import signal
import socket
import subprocess


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(cmd: list[str], timeout: int = 300, env: dict | None = None) -> str:
    """Run a launcher (accelerate launch, torchrun) with one thread per process; its stderr, after
    asserting it succeeded. It runs in its own process group, so a hang kills the workers too."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "LLM2REC_TORCH_THREADS": "1", "PYTHONWARNINGS": "ignore",
           **(env or {})}  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True)  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    assert proc.returncode == 0, stderr[-4000:]
    return stderr
