"""llm2rec.distributed: decisions made on the main process reach every process."""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

import pytest
import torch

from llm2rec.distributed import DEEPSPEED_REFUSED, from_main_process, process_state, refuse_deepspeed
from llm2rec.errors import ConfigError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        # Each process measures something slightly different (as two GPUs training a SASRec may).
        seen = from_main_process({"sasrec_recall@20": 0.25 + rank / 100})
        torch.save(seen, f"{out}-{rank}.pt")
        torch.distributed.barrier()
    finally:
        torch.distributed.destroy_process_group()


def test_every_process_gets_the_main_process_value(tmp_path):
    out = tmp_path / "seen"
    torch.multiprocessing.spawn(_worker, args=(2, _free_port(), str(out)), nprocs=2, join=True)
    assert [torch.load(f"{out}-{r}.pt") for r in (0, 1)] == [{"sasrec_recall@20": 0.25}] * 2


def test_without_a_process_group_the_value_is_unchanged():
    value = {"knn_recall@20": 0.3}
    assert from_main_process(value) is value


# --------------------------------------------------------------------------------------------- DeepSpeed
def test_a_deepspeed_launch_is_refused_in_one_line(monkeypatch):
    """``accelerate launch --use_deepspeed`` (or distributed_type: DEEPSPEED) sets this variable; the
    process state refuses it before Accelerate would import deepspeed (not installed here)."""
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    with pytest.raises(ConfigError) as refused:
        process_state()
    assert str(refused.value) == DEEPSPEED_REFUSED and "\n" not in DEEPSPEED_REFUSED
    assert "not supported" in DEEPSPEED_REFUSED and "FSDP" in DEEPSPEED_REFUSED


@pytest.mark.parametrize(
    "state",
    [
        SimpleNamespace(distributed_type="DEEPSPEED"),
        SimpleNamespace(distributed_type="MULTI_GPU", deepspeed_plugin=object()),
    ],
)
def test_a_deepspeed_state_is_refused(monkeypatch, state):
    from accelerate.utils import DistributedType

    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    with pytest.raises(ConfigError, match="^DeepSpeed is not supported"):
        refuse_deepspeed(state)
    with pytest.raises(ConfigError):
        refuse_deepspeed(SimpleNamespace(distributed_type=DistributedType.DEEPSPEED))  # the enum, too


def test_ddp_and_fsdp_states_are_not_refused(monkeypatch):
    monkeypatch.delenv("ACCELERATE_USE_DEEPSPEED", raising=False)
    for kind in ("NO", "MULTI_CPU", "MULTI_GPU", "FSDP"):
        refuse_deepspeed(SimpleNamespace(distributed_type=kind, deepspeed_plugin=None))
    refuse_deepspeed()
