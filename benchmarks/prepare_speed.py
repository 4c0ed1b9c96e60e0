"""How fast `llm2rec prepare` handles a 1M-interaction Amazon-2023-format log, and its peak memory.

Generates synthetic `<Cat>.jsonl.gz` + `meta_<Cat>.jsonl.gz` files (not timed), then runs the real command
in a child process and reports wall time and the child's peak RSS. Target (issue #2): < 60 s, < 4 GB.

    python benchmarks/prepare_speed.py [--interactions 1000000] [--out benchmarks/results/prepare_speed.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from llm2rec.data.amazon2023_files import write_amazon2023_files
from llm2rec.data.synthetic import generate
from llm2rec.io import atomic_write_json


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--interactions", type=int, default=1_000_000)
    ap.add_argument("--items", type=int, default=50_000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "prepare_speed.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        # Measure the generator's mean sequence length on a sample, then size the real log from it.
        sample = generate(num_users=2000, num_items=args.items, seed=1)
        mean_length = len(sample.interactions) / 2000
        raw = generate(num_users=round(args.interactions / mean_length), num_items=args.items, seed=0)
        reviews, meta = write_amazon2023_files(raw, tmp / "raw", category="Bench")
        review_mb = round(reviews.stat().st_size / 2**20, 1)
        gen_s = time.perf_counter() - t0
        cmd = [sys.executable, "-m", "llm2rec.cli", "prepare", "--format", "amazon2023",
               "--input", str(reviews), str(meta), "--out", str(tmp / "dataset")]  # fmt: skip
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"prepare failed:\n{proc.stderr}")
        peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: KiB
        manifest = json.loads((tmp / "dataset" / "manifest.json").read_text())
    result = {
        "benchmark": "prepare_speed",
        "input_interactions": len(raw.interactions),
        "input_items": len(raw.items),
        "review_file_mb": review_mb,
        "generation_seconds": round(gen_s, 2),
        "prepare_wall_seconds": round(wall, 2),
        "prepare_peak_rss_mb": round(peak_mb, 1),
        "kept": {k: manifest["counts"][k] for k in ("users", "items", "interactions")},
        "targets": {"wall_seconds": 60, "peak_rss_mb": 4096},
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
    }
    print(json.dumps(result, indent=2))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
