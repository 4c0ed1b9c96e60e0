"""How fast the Amazon Reviews 2023 readers parse 1M reviews (readers only, no protocol).

Writes ``<Cat>.jsonl.gz`` with full review records (review title and text included, as in the real files)
and a metadata file, times ``read_source("amazon2023", ...)`` in this process, then writes the same events as
``last_out_w_his`` benchmark CSVs and times ``read_source("amazon2023-benchmark", ...)``. Peak RSS covers both.

    python benchmarks/read_sources_speed.py [--reviews 1000000] [--out benchmarks/results/read_sources_speed.json]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import random
import resource
import tempfile
import time
from pathlib import Path

from llm2rec.io import atomic_write_json

TEXT = (
    "Works as described. The bottle arrived well packed and the spray is fine and even; I would buy it "
    "again for the price, although the cap feels a little cheap. "
) * 2


def write_files(root: Path, n_reviews: int, n_users: int, n_items: int) -> tuple[Path, Path]:
    rng = random.Random(0)
    reviews, meta = root / "Bench.jsonl.gz", root / "meta_Bench.jsonl.gz"
    with gzip.open(reviews, "wt", encoding="utf-8", compresslevel=1) as fh:
        for n in range(n_reviews):
            item = f"B{rng.randrange(n_items):09d}"
            fh.write(
                json.dumps(
                    {
                        "rating": float(rng.randint(1, 5)),
                        "title": "Great product",
                        "text": TEXT,
                        "images": [],
                        "asin": item,
                        "parent_asin": item,
                        "user_id": f"A{rng.randrange(n_users):027d}",
                        "timestamp": 1500000000000 + n * 1000,
                        "helpful_vote": 0,
                        "verified_purchase": True,
                    }
                )
                + "\n"
            )
    with gzip.open(meta, "wt", encoding="utf-8", compresslevel=1) as fh:
        for i in range(n_items):
            fh.write(
                json.dumps(
                    {
                        "main_category": "All Beauty",
                        "title": f"Product {i} &amp; Co, 8-Ounce",
                        "average_rating": 4.5,
                        "rating_number": 10,
                        "features": ["a", "b"],
                        "description": ["Nice."],
                        "price": None,
                        "images": [],
                        "videos": [],
                        "store": "Store",
                        "categories": ["A", "B"],
                        "details": {},
                        "parent_asin": f"B{i:09d}",
                        "bought_together": None,
                    }
                )
                + "\n"
            )
    return reviews, meta


def write_benchmark_csvs(root: Path, log) -> list[Path]:
    """``last_out_w_his`` CSVs (train/valid/test) built from the parsed reviews, as the official scripts do."""
    df = log.interactions.sort_values(["user", "timestamp"], kind="stable")
    rows = {"train": [], "valid": [], "test": []}
    for user, group in df.groupby("user", sort=False):
        items = group["item"].tolist()
        for i, (item, ts, rating) in enumerate(zip(items, group["timestamp"], group["rating"])):
            split = "test" if i == len(items) - 1 else "valid" if i == len(items) - 2 else "train"
            rows[split].append(f"{user},{item},{rating},{ts},{' '.join(dict.fromkeys(items[:i]))}\n")
    paths = []
    for split, lines in rows.items():
        path = root / f"Bench.{split}.csv"
        path.write_text("user_id,parent_asin,rating,timestamp,history\n" + "".join(lines))
        paths.append(path)
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reviews", type=int, default=1_000_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "read_sources_speed.json")
    args = ap.parse_args()
    from llm2rec.data.sources import read_source

    with tempfile.TemporaryDirectory() as tmp:
        reviews, meta = write_files(
            Path(tmp), args.reviews, n_users=args.reviews // 8, n_items=args.reviews // 20
        )
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0, c0 = time.perf_counter(), time.process_time()
        log = read_source("amazon2023", [reviews, meta])
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        csvs = write_benchmark_csvs(Path(tmp), log)
        t0, c0 = time.perf_counter(), time.process_time()
        bench = read_source("amazon2023-benchmark", [*csvs, meta], use_shipped_split=True)
        bench_seconds, bench_cpu = time.perf_counter() - t0, time.process_time() - c0
        result = {
            "benchmark_csv_rows": len(bench.interactions),
            "benchmark_csv_read_seconds": round(bench_seconds, 2),
            "benchmark_csv_read_cpu_seconds": round(bench_cpu, 2),
            "benchmark_history_disagreements": bench.notes["history_disagreements"],
            "reviews": len(log.interactions),
            "items": len(log.items),
            "reviews_gz_mb": round(reviews.stat().st_size / 2**20, 1),
            "read_seconds": round(seconds, 2),
            "read_cpu_seconds": round(cpu, 2),
            "reviews_per_second": round(len(log.interactions) / seconds),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "rss_before_read_mb": round(rss_before),
            # wall time depends on what else runs on the machine; CPU time much less so
            "load_average_1min": round(os.getloadavg()[0], 1),
            "machine": f"{platform.machine()} {platform.processor() or ''} ({platform.python_version()})".strip(),
        }
    print(json.dumps(result, indent=2))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
