"""llm2rec.distributed: decisions made on the main process reach every process."""

from __future__ import annotations

import os
import socket

import torch

from llm2rec.distributed import from_main_process


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
