"""Extraction speed: titles/s with length-sorted batches (what ``Encoder.encode`` does) against batches in
the given order, plus peak memory of each. One run per mode, each in a fresh process (so peak RSS is that
mode's own).

    python benchmarks/embed_speed.py --encoder smollm2-135m --titles 512 --batch-size 32
    python benchmarks/embed_speed.py --encoder smollm2-135m --dataset runs/scientific/dataset

Titles come from a prepared dataset, or else from the built-in synthetic catalogue (no download).
Writes benchmarks/results/embed_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "embed_speed.json"


def load_titles(dataset: str | None, count: int) -> list[str]:
    if dataset:
        from llm2rec.data.dataset import Dataset

        titles = [t for t in Dataset.load(dataset).titles[1:] if t]
    else:
        from llm2rec.data.synthetic import generate

        titles = [t for t in generate(num_users=200, num_items=max(count, 200), seed=0).items["title"] if t]
    return titles[:count]


def run_mode(args) -> dict:
    """Child process: encode the titles in one mode, report time and peak memory."""
    import torch

    from llm2rec.embed.encoder import Encoder

    torch.set_num_threads(args.threads)
    titles = load_titles(args.dataset, args.titles)
    encoder = Encoder.load(args.encoder)
    encoder.encode(titles[: args.batch_size], batch_size=args.batch_size)  # warm-up (kernels, allocator)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    if args.mode == "sorted":
        encoder.encode(titles, batch_size=args.batch_size)
    else:  # the same batches a naive loop would make: consecutive titles, padded to their longest
        for i in range(0, len(titles), args.batch_size):
            encoder.encode(titles[i : i + args.batch_size], batch_size=args.batch_size)
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    lengths = [len(ids) for ids in encoder.tokenizer(titles)["input_ids"]]
    return {
        "mode": args.mode,
        "titles": len(titles),
        "seconds": seconds,
        "titles_per_s": len(titles) / seconds,
        "mean_tokens": sum(lengths) / len(lengths),
        "max_tokens": max(lengths),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_cuda_mib": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
        "device": str(next(encoder.model.parameters()).device),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--encoder", default="smollm2-135m")
    parser.add_argument("--dataset", default=None, help="prepared dataset dir (default: synthetic titles)")
    parser.add_argument("--titles", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--mode", choices=["sorted", "unsorted"], help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.mode:  # child
        print(json.dumps(run_mode(args)))
        return

    runs = {}
    for mode in ("unsorted", "sorted"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--mode", mode]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{mode:>8}: {runs[mode]['titles_per_s']:.1f} titles/s, peak RSS {runs[mode]['peak_rss_mib']:.0f} MiB"
        )
    result = {
        "benchmark": "embed_speed",
        "encoder": args.encoder,
        "dataset": Path(args.dataset).name if args.dataset else "synthetic",
        "batch_size": args.batch_size,
        "threads": args.threads,
        "speedup_sorted_over_unsorted": runs["sorted"]["titles_per_s"] / runs["unsorted"]["titles_per_s"],
        "runs": runs,
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "python": sys.version.split()[0],
        },
        "note": "one run per mode; a shared machine adds noise",
    }
    print(f"length-sorted / unsorted: {result['speedup_sorted_over_unsorted']:.2f}x")
    from llm2rec.io import atomic_write_json

    atomic_write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
