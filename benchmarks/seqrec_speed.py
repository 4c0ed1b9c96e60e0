"""Speed and memory of the downstream recommenders and of exact full-ranking evaluation.

Phases (each in a fresh process, so that its peak memory is its own):

* ``train_sasrec`` / ``train_gru4rec``: training sequences/s (examples per second, batch 256, full softmax)
  on a synthetic 50k-user × 20k-item leave-one-out dataset (every prefix supervised), over ``--train-steps``
  batches; with the projected time of one epoch.
* ``eval_sasrec``: full-ranking evaluation users/s of SASRec on that dataset's 50k test users (model forward
  included); ``rank_20k``: the ranking alone (random 128-d vectors, 50k users × 20k items).
* ``eval_1m``: full ranking of 10k users against 1M items (random 128-d vectors), with the extra memory it
  needs beyond its inputs (the issue's bound: 4 GB).
* ``train_1m_id`` / ``train_1m_text``: SASRec training on a 50k-user × 1M-item catalogue as ``llm2rec
  seqrec`` trains it (the softmax over all items in chunks of the memory budget), ID or 384-d text
  vectors: targets/s, the projected epoch and peak RSS (issue 38 §2).
* ``per_user_loop`` / ``per_user_loop_20k``: the same rankings one user at a time in Python, on a few
  users, for scale.

    python benchmarks/seqrec_speed.py [--threads 2] [--train-steps 20] [--out benchmarks/results/seqrec_speed.json]

Runs on the GPU when one is present (then peak memory is also reported from ``torch.cuda``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from llm2rec.io import atomic_write_json

NUM_USERS, NUM_ITEMS, MAX_HISTORY = 50_000, 20_000, 10
BIG_ITEMS, BIG_USERS, DIM = 1_000_000, 10_000, 128


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB


def synthetic_data(seed: int = 0, num_items: int = NUM_ITEMS):
    """Leave-one-out sequences with Zipf-like item popularity and lengths 3..50 (mean ≈ 10)."""
    from llm2rec.seqrec.data import SeqRecData

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.geometric(1 / 8, NUM_USERS) + 2, 3, 50)
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.8
    flat = rng.choice(num_items, size=int(lengths.sum()), p=popularity / popularity.sum()) + 1
    seqs = np.split(flat, np.cumsum(lengths)[:-1])
    n_train = lengths - 2
    sequences = pd.DataFrame({"user": np.arange(NUM_USERS), "items": seqs, "n_train": n_train, "n_valid": 1})

    def split(offset):
        return pd.DataFrame(
            {
                "user": np.arange(NUM_USERS),
                "history": [s[max(0, len(s) - offset - MAX_HISTORY) : len(s) - offset] for s in seqs],
                "target": [s[len(s) - offset] for s in seqs],
            }
        )

    train_sequences = [s[:n] for s, n in zip(seqs, n_train, strict=True)]
    return SeqRecData.from_frames(train_sequences, split(2), split(1), sequences, num_items, MAX_HISTORY)


def build(name: str, data, device):
    from llm2rec.seqrec.config import SeqRecConfig
    from llm2rec.seqrec.registry import build_model

    torch.manual_seed(0)
    return build_model(SeqRecConfig(model=name).resolved(False), data, None).to(device)


def phase_train(name: str, steps: int, device) -> dict:
    import torch.nn.functional as F

    data = synthetic_data()
    model = build(name, data, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    train, batch = data.train, 256
    order = torch.randperm(len(train))
    hist, lens, targets = (t[order].to(device) for t in (train.histories, train.lengths, train.targets))

    def step(i):
        sl = slice(i * batch, (i + 1) * batch)
        loss = F.cross_entropy(model(hist[sl], lens[sl]), targets[sl] - 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    step(0)  # warm-up
    _sync(device)
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    _sync(device)
    seconds = time.perf_counter() - start
    rate = steps * batch / seconds
    return {
        "train_examples": len(train),
        "steps": steps,
        "sequences_per_s": round(rate, 1),
        "projected_epoch_s": round(len(train) / rate, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **_gpu_peak(device),
    }


def phase_train_big(item_repr: str, steps: int, device) -> dict:
    """SASRec on a 1M-item catalogue, trained as ``llm2rec seqrec`` trains (whole-sequence rows, the
    softmax over every item in chunks of the memory budget: seqrec.chunked_loss), ID or 384-d text vectors."""
    from llm2rec.seqrec.config import config_from_overrides
    from llm2rec.seqrec.registry import build_model
    from llm2rec.seqrec.trainer import epoch_batches

    data = synthetic_data(num_items=BIG_ITEMS)
    vectors = None
    if item_repr == "text":
        vectors = np.random.default_rng(1).standard_normal((BIG_ITEMS + 1, 384), dtype=np.float32)
    cfg = config_from_overrides(model="sasrec", progress=False).resolved(vectors is not None)
    torch.manual_seed(0)
    model = build_model(cfg, data, vectors).to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    rows, t = data.train_rows, cfg.train
    inputs, targets = rows.inputs.to(device), rows.targets.to(device)
    batches = epoch_batches(rows, t.batch_size, torch.Generator().manual_seed(0), t.length_group)
    seconds, done, positions = 0.0, 0, 0
    for idx, width in batches:
        start = time.perf_counter()
        loss = model.training_loss(inputs[idx, :width], targets[idx, :width], t.memory_budget)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _sync(device)
        if done:  # the first step is the warm-up
            seconds += time.perf_counter() - start
            positions += int((targets[idx, :width] > 0).sum())
        done += 1
        if done > steps:
            break
    per_target = seconds / positions
    return {
        "items": BIG_ITEMS, "item_repr": item_repr, "steps": steps, "memory_budget": t.memory_budget,
        "train_targets": int((rows.targets > 0).sum()), "targets_per_s": round(1 / per_target, 1),
        "projected_epoch_s": round(int((rows.targets > 0).sum()) * per_target, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1), **_gpu_peak(device),
    }  # fmt: skip


def phase_eval_model(device) -> dict:
    from llm2rec.seqrec.trainer import rank_targets

    data = synthetic_data()
    model = build("sasrec", data, device)
    before = rss_mb()
    _sync(device)
    start = time.perf_counter()
    ranks = rank_targets(model, data.test)
    _sync(device)
    seconds = time.perf_counter() - start
    return {
        "users": len(ranks),
        "items": NUM_ITEMS,
        "seconds": round(seconds, 2),
        "users_per_s": round(len(ranks) / seconds, 1),
        "rss_before_mb": round(before, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        **_gpu_peak(device),
    }


def phase_rank(num_users: int, num_items: int, device) -> dict:
    """Full ranking of random user vectors against random item vectors (no model), with its extra memory."""
    from llm2rec.seqrec.metrics import full_ranking_ranks

    gen = torch.Generator().manual_seed(0)
    users = torch.randn(num_users, DIM, generator=gen).to(device)
    items = torch.randn(num_items, DIM, generator=gen).to(device)
    targets = torch.randint(1, num_items + 1, (num_users,), generator=gen)
    inputs_mb = rss_mb()
    _sync(device)
    start = time.perf_counter()
    ranks = full_ranking_ranks(users, items, targets)
    _sync(device)
    seconds = time.perf_counter() - start
    return {
        "users": num_users,
        "items": num_items,
        "dim": DIM,
        "seconds": round(seconds, 2),
        "users_per_s": round(num_users / seconds, 1),
        "rss_with_inputs_mb": round(inputs_mb, 1),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "extra_peak_mb": round(peak_rss_mb() - inputs_mb, 1),
        "mean_rank": float(ranks.double().mean()),
        **_gpu_peak(device),
    }


def phase_per_user_loop(num_users: int, num_items: int, device) -> dict:
    gen = torch.Generator().manual_seed(0)
    users = torch.randn(num_users, DIM, generator=gen).to(device)
    items = torch.randn(num_items, DIM, generator=gen).to(device)
    targets = torch.randint(1, num_items + 1, (num_users,), generator=gen)
    start = time.perf_counter()
    for u in range(num_users):
        scores = items @ users[u]
        _ = int((scores > scores[targets[u] - 1]).sum()) + 1
    seconds = time.perf_counter() - start
    return {"users": num_users, "items": num_items, "users_per_s": round(num_users / seconds, 1)}


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _gpu_peak(device) -> dict:
    if device.type != "cuda":
        return {}
    return {"gpu_peak_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)}


def _child(queue, threads: int, fn_name: str, args: tuple) -> None:
    torch.set_num_threads(threads)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    queue.put(globals()[fn_name](*args, device))


def run_phase(threads: int, fn_name: str, *args) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, threads, fn_name, args))
    proc.start()
    result = queue.get()
    proc.join()
    print(fn_name, args, result, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--loop-users", type=int, default=20)
    parser.add_argument("--only", default="", help="Comma-separated phases to (re)run, merged into --out.")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "seqrec_speed.json")
    args = parser.parse_args()
    phases = {
        "train_sasrec": ("phase_train", "sasrec", args.train_steps),
        "train_gru4rec": ("phase_train", "gru4rec", args.train_steps),
        "eval_sasrec": ("phase_eval_model",),
        "per_user_loop_20k": ("phase_per_user_loop", args.loop_users * 50, NUM_ITEMS),
        "rank_20k": ("phase_rank", NUM_USERS, NUM_ITEMS),
        "eval_1m": ("phase_rank", BIG_USERS, BIG_ITEMS),
        "train_1m_id": ("phase_train_big", "id", args.train_steps),
        "train_1m_text": ("phase_train_big", "text", args.train_steps),
        "per_user_loop": ("phase_per_user_loop", args.loop_users, BIG_ITEMS),
    }
    only = set(args.only.split(",")) if args.only else set(phases)
    results = json.loads(args.out.read_text()) if args.only and args.out.is_file() else {}
    results["machine"] = {
        "platform": platform.platform(),
        "cpu_count": mp.cpu_count(),
        "load_average_at_start": list(os.getloadavg()),  # other jobs on the machine slow every number
        "torch_threads": args.threads,
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
    }
    results["dataset"] = {"users": NUM_USERS, "items": NUM_ITEMS, "max_history": MAX_HISTORY}
    for name, (fn_name, *fn_args) in phases.items():
        if name in only:
            results[name] = run_phase(args.threads, fn_name, *fn_args)
    for entry in results.values():
        entry.pop("speedup_vs_per_user_loop", None)
    for batched, loop in (("eval_1m", "per_user_loop"), ("rank_20k", "per_user_loop_20k")):
        if batched in results and loop in results:
            speedup = results[batched]["users_per_s"] / results[loop]["users_per_s"]
            results[batched]["speedup_vs_per_user_loop"] = round(speedup, 1)
    results["machine"]["load_average_at_end"] = list(os.getloadavg())
    atomic_write_json(args.out, results)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
