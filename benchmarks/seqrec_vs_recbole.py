"""llm2rec's downstream trainer against RecBole 1.2.1, side by side, on the same data and settings.

    bash benchmarks/recbole/setup.sh                        # once: RecBole in .venv-recbole
    python benchmarks/seqrec_vs_recbole.py [--pairs 3] [--epochs 10] [--seeds 2024 2025 2026]

Data, prepared once and written in both tools' formats (so both read exactly the same rows):
* ``scientific``: the shared Scientific subset as shipped (leave-one-out, history ≤ 10);
* ``long``: the built-in generator with long sequences (1,000 users, 1,700 items, 80-120 events per user),
  leave-one-out, history ≤ 50.

Speed: for each dataset and model, ``--pairs`` alternating runs (llm2rec, RecBole, llm2rec, ...), each a
fresh process pinned to one core with one torch thread, ``--epochs`` epochs with early stopping off:
seconds per training epoch, whole-process wall time (start-up, data loading, validation every epoch and
the final test included) and peak RSS, and their ratios (medians). Quality: ``--seeds`` runs to
convergence (patience 10) of each side, test Recall/NDCG@10/20, mean ± population std.
JSON in ``benchmarks/results/seqrec_vs_recbole.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RECBOLE_PY = REPO / ".venv-recbole" / "bin" / "python"
SCIENTIFIC = REPO.parent / "shared" / "data" / "unisrec_scientific_subset_2018"
METRICS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}


def prepare(work: Path, long_users: int = 1000, long_history: int = 50) -> dict[str, Path]:
    """Both datasets as llm2rec datasets and as RecBole benchmark files (from the same tables)."""
    from llm2rec.config import dataset_spec
    from llm2rec.data.dataset import Dataset
    from llm2rec.data.prepare import prepare_from_spec
    from llm2rec.data.protocol import ProtocolSettings
    from llm2rec.data.protocol import prepare as run_protocol
    from llm2rec.data.synthetic import generate

    out = {}
    sci = work / "scientific"
    prepare_from_spec(
        dataset_spec(format="recbole", input=[str(SCIENTIFIC)], kcore=0, keep_duplicates=True), sci
    )
    out["scientific"] = sci
    long = work / "long"
    raw = generate(num_users=long_users, num_items=1700, seed=0, min_length=80, max_length=120)
    run_protocol(raw, long, ProtocolSettings(kcore=0, max_history=long_history))
    out["long"] = long
    for name, root in out.items():
        write_recbole_files(Dataset.load(root), work / "recbole" / name, name)
    return out


def write_recbole_files(dataset, folder: Path, name: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "valid", "test"):
        table = dataset.split(split)
        lines = ["user_id:token\titem_id_list:token_seq\titem_id:token"]
        lines += [
            f"{u}\t{' '.join(map(str, h))}\t{t}"
            for u, h, t in zip(table["user"], table["history"], table["target"], strict=True)
        ]
        (folder / f"{name}.{split}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")


def run_llm2rec(
    dataset: Path, model: str, epochs: int, patience: int, seed: int, work: Path, extra=()
) -> dict:
    out = work / f"llm2rec-{model}-{dataset.name}-{seed}-{time.time_ns()}"
    report = out.with_suffix(".json")
    code = (
        "import json, resource, sys, time; t = time.perf_counter()\n"
        "from llm2rec.cli import main\n"
        f"sys.argv = {['llm2rec', 'seqrec', '-d', str(dataset), '--model', model, '--seeds', str(seed), '--epochs', str(epochs), '--patience', str(patience), '--threads', '1', '--quiet', '--out', str(out), '--lr', '1e-3', *extra]!r}\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"json.dump({{'peak_rss_mb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'inside_process_seconds': time.perf_counter() - t}}, open({str(report)!r}, 'w'))\n"
    )
    wall = _timed([sys.executable, "-c", code])
    seed_record = json.loads((out / f"seed-{seed}" / "metrics.json").read_text())
    inside = json.loads(report.read_text())
    return {
        "wall_seconds": wall,
        "train_seconds_per_epoch": [p["seconds"] for p in seed_record["curve"]],
        "epochs_run": seed_record["epochs_run"],
        "test": seed_record["test"],
        **inside,
    }


def run_recbole(
    folder: Path, name: str, model: str, epochs: int, patience: int, seed: int, max_len: int
) -> dict:
    report = Path(tempfile.mkstemp(suffix=".json")[1])
    cmd = [str(RECBOLE_PY), str(REPO / "benchmarks" / "recbole" / "run_recbole.py"), "--data-path", str(folder.parent),
           "--dataset", name, "--model", {"sasrec": "SASRec", "gru4rec": "GRU4Rec"}[model], "--epochs", str(epochs),
           "--patience", str(patience), "--seed", str(seed), "--max-len", str(max_len), "--out", str(report)]  # fmt: skip
    wall = _timed(cmd)
    result = json.loads(report.read_text())
    test = {k.lower(): v for k, v in result.pop("test").items()}
    return {"wall_seconds": wall, **result, "test": test}


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(["taskset", "-c", "0", *cmd], env=ENV, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def speed(datasets, work, models, pairs: int, epochs: int, long_history: int, extra=()) -> dict:
    out = {}
    for name, root in datasets.items():
        max_len = 10 if name == "scientific" else long_history
        for model in models:
            ours, theirs = [], []
            for _ in range(pairs):  # alternating: A B A B ...
                ours.append(run_llm2rec(root, model, epochs, 10_000, 2024, work, extra))
                theirs.append(
                    run_recbole(work / "recbole" / name, name, model, epochs, 10_000, 2024, max_len)
                )
            out[f"{name}/{model}"] = _speed_summary(ours, theirs)
            print(json.dumps({f"{name}/{model}": out[f"{name}/{model}"]["ratio"]}), flush=True)
    return out


def _speed_summary(ours: list[dict], theirs: list[dict]) -> dict:
    def med(runs, key):
        return statistics.median(
            statistics.median(r[key]) if isinstance(r[key], list) else r[key] for r in runs
        )

    summary = {}
    for label, runs in (("llm2rec", ours), ("recbole", theirs)):
        summary[label] = {
            "train_seconds_per_epoch": round(med(runs, "train_seconds_per_epoch"), 3),
            "wall_seconds": round(med(runs, "wall_seconds"), 2),
            "peak_rss_mb": round(med(runs, "peak_rss_mb"), 1),
            "wall_seconds_each": [round(r["wall_seconds"], 2) for r in runs],
        }
    summary["ratio"] = {
        key: round(summary["llm2rec"][key] / summary["recbole"][key], 3)
        for key in ("train_seconds_per_epoch", "wall_seconds", "peak_rss_mb")
    }
    return summary


def quality(datasets, work, models, seeds, which: str, long_history: int, extra=()) -> dict:
    import numpy as np

    out = {}
    for name, root in datasets.items():
        max_len = 10 if name == "scientific" else long_history
        for model in models:
            runs = {"llm2rec": [], "recbole": []}
            for seed in seeds:
                if which in ("both", "llm2rec"):
                    runs["llm2rec"].append(run_llm2rec(root, model, 500, 10, seed, work, extra))
                if which in ("both", "recbole"):
                    runs["recbole"].append(
                        run_recbole(work / "recbole" / name, name, model, 500, 10, seed, max_len)
                    )
            out[f"{name}/{model}"] = {
                side: {k: {"mean": round(float(np.mean([r["test"][k] for r in rs])), 4),
                           "std": round(float(np.std([r["test"][k] for r in rs])), 4),
                           "per_seed": [round(r["test"][k], 4) for r in rs]} for k in METRICS}
                | {"epochs_run": [r["epochs_run"] for r in rs], "wall_seconds": [round(r["wall_seconds"], 1) for r in rs]}
                for side, rs in runs.items() if rs
            }  # fmt: skip
            print(
                json.dumps(
                    {f"{name}/{model}": {s: v["recall@10"] for s, v in out[f"{name}/{model}"].items()}}
                ),
                flush=True,
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--models", nargs="+", default=["sasrec", "gru4rec"])
    ap.add_argument("--seeds", nargs="*", type=int, default=[2024, 2025, 2026])
    ap.add_argument("--quality", choices=["both", "llm2rec", "recbole", "none"], default="both")
    ap.add_argument("--datasets", nargs="+", default=["scientific", "long"])
    ap.add_argument("--long-users", type=int, default=1000)
    ap.add_argument("--long-history", type=int, default=50)
    ap.add_argument("--set", dest="extra", action="append", default=[], help="llm2rec seqrec --set KEY=VALUE")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "seqrec_vs_recbole.json")
    args = ap.parse_args()
    if not RECBOLE_PY.is_file():
        sys.exit("RecBole is not installed: run `bash benchmarks/recbole/setup.sh` first")
    from llm2rec.io import atomic_write_json

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        datasets = {
            k: v for k, v in prepare(work, args.long_users, args.long_history).items() if k in args.datasets
        }
        extra = [x for pair in args.extra for x in ("--set", pair)]
        result = {
            "settings": {"epochs": args.epochs, "pairs": args.pairs, "threads": 1, "pinned_core": 0,
                         "datasets": args.datasets, "long_users": args.long_users, "long_history": args.long_history,
                         "llm2rec_set": args.extra,
                         "hidden": 128, "layers": 2, "heads": 2, "ffn": 256, "dropout": 0.3, "batch": 256, "lr": 1e-3},
            "speed": speed(datasets, work, args.models, args.pairs, args.epochs, args.long_history, extra),
            "machine": {"python": platform.python_version(), "cpu_count": os.cpu_count()},
        }  # fmt: skip
        if args.quality != "none" and args.seeds:
            result["quality"] = quality(
                datasets, work, args.models, args.seeds, args.quality, args.long_history, extra
            )
    print(json.dumps(result, indent=2))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
