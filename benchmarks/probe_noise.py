"""How far apart must two item-vector files be for the valid knn probe to tell them apart?

    python benchmarks/probe_noise.py --dataset RUN/dataset [LABEL=]A.npy [LABEL=]B.npy ... [--json OUT.json]

The MNTP and contrastive stages keep the checkpoint whose vectors score best in valid knn Recall@20
(`llm2rec/train/probe.py`). This scores each vector file exactly as that probe does (the knn baseline on
the valid split, seen items removed, ties in expectation) and prints, for every pair, the difference in
Recall@20 with its *paired* standard error (both files are scored on the same valid rows). A difference
within about one paired error is not evidence that one file is better. The test split is never read.
JSON: benchmarks/results/probe_noise.json unless --json says otherwise.
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def valid_hits(dataset, vectors: np.ndarray) -> np.ndarray:
    """Per valid row, the expected Recall@20 of the knn baseline on ``vectors`` ((N+1, d), row 0 padding)."""
    from llm2rec.seqrec.data import split_examples
    from llm2rec.seqrec.metrics import per_row_metric
    from llm2rec.train.probe import knn_ranks

    return per_row_metric(knn_ranks(split_examples(dataset, "valid"), vectors), "recall", 20).numpy()


def compare(dataset_dir: Path, files: dict[str, Path]) -> dict:
    """Each file's valid knn Recall@20 with its standard error, and every pair's paired difference."""
    from llm2rec.data.dataset import Dataset
    from llm2rec.data.vectors import load_item_vectors
    from llm2rec.seqrec.metrics import standard_error

    dataset = Dataset.load(dataset_dir)
    hits = {
        label: valid_hits(dataset, load_item_vectors(f, dataset.num_items, dataset.checksum))
        for label, f in files.items()
    }
    singles = [{"file": n, "recall@20": float(h.mean()), "se": standard_error(h)} for n, h in hits.items()]
    pairs = [
        {
            "a": a,
            "b": b,
            "b_minus_a": float((hits[b] - hits[a]).mean()),
            "paired_se": standard_error(hits[b] - hits[a]),
        }
        for a, b in itertools.combinations(hits, 2)
    ]
    return {
        "dataset": dataset_dir.name,
        "valid_rows": len(next(iter(hits.values()))),
        "files": singles,
        "pairs": pairs,
    }


def _labelled(arg: str) -> tuple[str, Path]:
    """``LABEL=PATH`` or ``PATH`` (labelled by its file name: no machine path goes into the JSON)."""
    label, sep, path = arg.partition("=")
    return (label, Path(path)) if sep else (Path(arg).name, Path(arg))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", type=Path, required=True, help="a prepared dataset directory")
    parser.add_argument(
        "files", nargs="+", help="item-vector .npy files of that dataset, as LABEL=PATH or PATH"
    )
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "probe_noise.json")
    args = parser.parse_args(argv)
    files = dict(_labelled(arg) for arg in args.files)
    if len(files) != len(args.files):
        parser.error("two files have the same label: name them LABEL=PATH")
    result = compare(args.dataset, files)
    for s in result["files"]:
        print(f"{s['file']}: valid knn R@20 {s['recall@20']:.4f} (SE {s['se']:.4f})")
    for p in result["pairs"]:
        print(f"{p['b']} - {p['a']}: {p['b_minus_a']:+.4f} (paired SE {p['paired_se']:.4f})")
    from llm2rec.io import atomic_write_json

    atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
