"""Extraction speed and memory (issue 37 §2): titles/s and peak RSS of ``embed_items`` with 1 and 2
processes, and peak RSS at 10k and 100k titles (flat in the number of items: shards are streamed to disk,
texts tokenized a chunk at a time, the merge copies blocks). Each measurement runs in fresh processes
(``torch.distributed.run`` for two), so every peak RSS is that run's own; a control passes the same chunks
of texts through ``Encoder.encode`` alone, which shows what of the peak is the encoder's own.

    python benchmarks/embed_speed.py                                   # tiny model, synthetic titles, CPU
    python benchmarks/embed_speed.py --speed-titles 20000 --memory-titles 10000 100000 --hidden 256
    python benchmarks/embed_speed.py --sorting --encoder smollm2-135m --titles 512   # the older comparison

The encoder is a randomly initialised tiny Qwen2 (``llm2rec.llm.tiny``; ``--hidden`` wide, ``--layers``
deep, bidirectional, mean pooling), titles come from the built-in synthetic catalogue: no download.
Writes benchmarks/results/embed_speed.json (``--sorting``: length-sorted against unsorted batches, one
process, written to benchmarks/results/embed_speed_sorting.json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def write_dataset(root: Path, count: int, seed: int = 0) -> Path:
    """A prepared dataset of ``count`` synthetic items (items.parquet + manifest.json: what extraction reads)."""
    import numpy as np
    import pandas as pd

    from llm2rec.data.synthetic_catalogue import build_catalogue

    titles = build_catalogue(count, np.random.default_rng(seed)).title[:count]
    root.mkdir(parents=True, exist_ok=True)
    ids = np.arange(1, len(titles) + 1, dtype=np.int32)
    pd.DataFrame({"item_id": ids, "key": [f"S{i:07d}" for i in ids], "title": titles}).to_parquet(
        root / "items.parquet", index=False
    )
    manifest = {
        "format_version": 1,
        "counts": {"items": len(titles), "users": 0},
        "settings": {"max_history": 10},
    }
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def write_encoder(root: Path, hidden: int, layers: int) -> Path:
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.bidirectional import enable_bidirectional
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    model = make_tiny_model("qwen2", tokenizer, hidden_size=hidden, num_layers=layers, num_heads=4, seed=0)
    return save_pretrained_atomic(enable_bidirectional(model), tokenizer, root)


def child(args) -> None:
    """One process of a measurement: load the encoder, then time ``embed_items`` and report peak RSS."""
    import psutil
    import torch

    from llm2rec.distributed import Processes
    from llm2rec.embed.encoder import Encoder
    from llm2rec.embed.extract import embed_items

    torch.set_num_threads(args.threads)
    procs = Processes()
    encoder = Encoder.from_pretrained(args.encoder, device=procs.device)
    encoder.encode(["warm up"] * args.batch_size, batch_size=args.batch_size)
    rss_before = psutil.Process().memory_info().rss
    procs.wait()
    start = time.perf_counter()
    if args.encode_only:  # the control: the same chunks through Encoder.encode, vectors thrown away
        _encode_only(encoder, args)
    else:
        embed_items(encoder, args.dataset, args.out, batch_size=args.batch_size, dtype=args.dtype,
                    show_progress=False, overwrite=True)  # fmt: skip
    seconds = time.perf_counter() - start
    report = {
        "rank": procs.rank,
        "seconds": seconds,
        "rss_before_extraction_mib": rss_before / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
    }
    Path(args.report, f"rank{procs.rank}.json").write_text(json.dumps(report))


def _encode_only(encoder, args) -> None:
    from llm2rec.embed.extract import CHUNK_BATCHES, ItemTexts

    items = ItemTexts(Path(args.dataset) / "items.parquet")
    chunk = args.batch_size * CHUNK_BATCHES
    for first in range(0, len(items), chunk):
        encoder.encode(items.texts(first, first + chunk), batch_size=args.batch_size)


def measure(
    encoder: Path, dataset: Path, work: Path, *, processes: int, args, dtype: str | None = None, control=False
) -> dict:
    """Run one extraction in fresh process(es) and collect what each reported."""
    report = Path(tempfile.mkdtemp(dir=work, prefix="report."))
    out = work / f"vectors-{processes}p-{dataset.name}.npy"
    dtype = dtype or args.dtype
    base = [__file__, "--child", "--encoder", str(encoder), "--dataset", str(dataset), "--out", str(out),
            "--report", str(report), "--batch-size", str(args.batch_size), "--threads", str(args.threads),
            "--dtype", dtype, *(["--encode-only"] if control else [])]  # fmt: skip
    launcher = [sys.executable] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONWARNINGS": "ignore"}
    done = subprocess.run([*launcher, *base], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        sys.exit(f"extraction failed:\n{done.stderr[-4000:]}")
    ranks = [json.loads(p.read_text()) for p in sorted(report.glob("rank*.json"))]
    items = json.loads((dataset / "manifest.json").read_text())["counts"]["items"]
    seconds = max(r["seconds"] for r in ranks)  # the slowest process, the merge included
    result = {
        "processes": processes,
        "titles": items,
        "dtype": dtype,
        "seconds": round(seconds, 2),
        "titles_per_s": round(items / seconds, 1),
        "peak_rss_mib_per_process": [round(r["peak_rss_mib"], 1) for r in ranks],
        "rss_before_extraction_mib_per_process": [round(r["rss_before_extraction_mib"], 1) for r in ranks],
    }
    if not control:
        result["file_mib"] = round(out.stat().st_size / 2**20, 2)
        out.unlink()
        out.with_suffix(".json").unlink()
    return result


def memory_run(encoder: Path, dataset: Path, count: int, work: Path, args) -> dict:
    """One process over ``count`` titles: ``embed_items``, and the control, the same chunks of texts
    through ``Encoder.encode`` alone (what the encoder itself costs, vectors thrown away)."""
    dataset = write_dataset(dataset, count)
    run = measure(encoder, dataset, work, processes=1, args=args)
    control = measure(encoder, dataset, work, processes=1, args=args, control=True)
    run["encode_only"] = {k: control[k] for k in ("seconds", "titles_per_s", "peak_rss_mib_per_process")}
    print(f"{count} titles, 1 process: peak RSS {run['peak_rss_mib_per_process'][0]:.0f} MiB "
          f"(before extraction {run['rss_before_extraction_mib_per_process'][0]:.0f}; the encoder alone over "
          f"the same chunks: {control['peak_rss_mib_per_process'][0]:.0f}), {run['titles_per_s']:.0f} titles/s, "
          f"file {run['file_mib']:.1f} MiB")  # fmt: skip
    return run


def extraction(args) -> dict:
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        encoder = write_encoder(work / "encoder", args.hidden, args.layers)
        speed_data = write_dataset(work / f"ds-{args.speed_titles}", args.speed_titles)
        speed = [measure(encoder, speed_data, work, processes=p, args=args) for p in (1, 2)]
        for run in speed:
            print(f"{run['processes']} process(es), {run['titles']} titles: {run['titles_per_s']:.0f} titles/s, "
                  f"peak RSS {max(run['peak_rss_mib_per_process']):.0f} MiB per process")  # fmt: skip
        half = measure(encoder, speed_data, work, processes=1, args=args, dtype="float16")
        print(
            f"float16: file {half['file_mib']:.2f} MiB against {speed[0]['file_mib']:.2f} MiB ({args.dtype})"
        )
        memory = [
            memory_run(encoder, work / f"ds-{count}", count, work, args) for count in args.memory_titles
        ]
    peaks = [run["peak_rss_mib_per_process"][0] for run in memory]
    return {
        "benchmark": "embed_speed",
        "encoder": f"tiny qwen2, hidden {args.hidden}, {args.layers} layer(s), bidirectional, mean pooling",
        "titles": "built-in synthetic catalogue",
        "batch_size": args.batch_size,
        "threads_per_process": args.threads,
        "dtype": args.dtype,
        "speed": speed,
        "speedup_2_over_1_process": round(speed[1]["titles_per_s"] / speed[0]["titles_per_s"], 2),
        "float16": half,
        "memory": memory,
        "peak_rss_growth_mib": round(peaks[-1] - peaks[0], 1),
        "encode_only_peak_rss_growth_mib": round(
            memory[-1]["encode_only"]["peak_rss_mib_per_process"][0]
            - memory[0]["encode_only"]["peak_rss_mib_per_process"][0],
            1,
        ),
        "vectors_mib_at_largest": round(args.memory_titles[-1] * args.hidden * 4 / 2**20, 1),
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": sys.version.split()[0],
            "device": "cpu",
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        },
        "note": "one run each; a shared machine adds noise to titles/s (load_average_1min: before, after)",
    }


# ------------------------------------------------------- --sorting: length-sorted against unsorted batches


def sorting_child(args) -> dict:
    """Encode the titles in one mode (``sorted``: what ``Encoder.encode`` does; ``unsorted``: consecutive
    titles, padded to their longest), report time and peak memory."""
    import torch

    from llm2rec.data.synthetic import generate
    from llm2rec.embed.encoder import Encoder

    torch.set_num_threads(args.threads)
    if args.dataset:
        from llm2rec.data.dataset import Dataset

        titles = [t for t in Dataset.load(args.dataset).titles[1:] if t][: args.titles]
    else:
        titles = [
            t for t in generate(num_users=200, num_items=max(args.titles, 200), seed=0).items["title"] if t
        ]
        titles = titles[: args.titles]
    encoder = Encoder.from_pretrained(args.encoder)
    encoder.encode(titles[: args.batch_size], batch_size=args.batch_size)  # warm-up
    start = time.perf_counter()
    if args.mode == "sorted":
        encoder.encode(titles, batch_size=args.batch_size)
    else:
        for i in range(0, len(titles), args.batch_size):
            encoder.encode(titles[i : i + args.batch_size], batch_size=args.batch_size)
    seconds = time.perf_counter() - start
    lengths = [len(ids) for ids in encoder.tokenizer(titles)["input_ids"]]
    return {"mode": args.mode, "titles": len(titles), "seconds": seconds, "titles_per_s": len(titles) / seconds,
            "mean_tokens": sum(lengths) / len(lengths), "max_tokens": max(lengths),
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "device": str(next(encoder.model.parameters()).device)}  # fmt: skip


def sorting(args) -> None:
    from llm2rec.io import atomic_write_json

    runs = {}
    for mode in ("unsorted", "sorted"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--mode", mode]
        done = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{mode:>8}: {runs[mode]['titles_per_s']:.1f} titles/s, peak RSS {runs[mode]['peak_rss_mib']:.0f} MiB"
        )
    result = {"benchmark": "embed_speed --sorting", "encoder": args.encoder,
              "dataset": Path(args.dataset).name if args.dataset else "synthetic", "batch_size": args.batch_size,
              "threads": args.threads,
              "speedup_sorted_over_unsorted": runs["sorted"]["titles_per_s"] / runs["unsorted"]["titles_per_s"],
              "runs": runs, "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
              "note": "one run per mode; a shared machine adds noise"}  # fmt: skip
    print(f"length-sorted / unsorted: {result['speedup_sorted_over_unsorted']:.2f}x")
    out = args.out or RESULTS / "embed_speed_sorting.json"
    atomic_write_json(out, result)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed-titles", type=int, default=20_000)
    parser.add_argument("--memory-titles", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--sorting", action="store_true", help="the length-sorted / unsorted comparison")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--encode-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--encoder", default="smollm2-135m", help="--sorting: the encoder")
    parser.add_argument("--dataset", default=None, help="--sorting: a prepared dataset (default: synthetic)")
    parser.add_argument("--titles", type=int, default=512, help="--sorting: how many titles")
    parser.add_argument("--report", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=["sorted", "unsorted"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.mode:  # a child of --sorting
        print(json.dumps(sorting_child(args)))
        return
    if args.sorting:
        sorting(args)
        return
    result = extraction(args)
    from llm2rec.io import atomic_write_json

    out = args.out or RESULTS / "embed_speed.json"
    atomic_write_json(out, result)
    print(f"peak RSS growth from {args.memory_titles[0]} to {args.memory_titles[-1]} titles: "
          f"{result['peak_rss_growth_mib']:+.1f} MiB (the encoder alone: {result['encode_only_peak_rss_growth_mib']:+.1f}; "
          f"the vectors: {result['vectors_mib_at_largest']} MiB)")  # fmt: skip
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
