"""The built-in synthetic dataset: how fast it is generated, and how much its titles tell a recommender.

Speed: ``generate()`` at the default size and at ~1M interactions, and writing the 1M log as Amazon 2023
``.jsonl.gz`` files. Signal: on the prepared default dataset (5-core, leave-one-out), full-ranking
Recall/NDCG@10 of four cheap next-item scorers that use only the last history item, with history items
masked:

* ``popularity``: training counts;
* ``markov_id``: first-order transition counts between item ids (ID-only);
* ``tfidf_title``: TF-IDF cosine between titles (text-only, no interactions);
* ``markov_id+tfidf_title``: both (a crude text-aware model),

overall and on rare targets (<= 10 training occurrences), where ids carry little and titles help.

    python benchmarks/synthetic_dataset.py [--out benchmarks/results/synthetic_dataset.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.data.amazon2023_files import write_amazon2023_files
from llm2rec.data.protocol import ProtocolSettings, prepare
from llm2rec.data.synthetic import generate
from llm2rec.io import atomic_write_json

RARE_MAX_COUNT = 10


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, round(time.perf_counter() - t0, 2)


def speed(tmp: Path) -> dict:
    default, default_s = timed(generate)
    big, big_s = timed(generate, num_users=100_000, num_items=20_000)
    (reviews, meta), write_s = timed(write_amazon2023_files, big, tmp / "amazon", "Bench")
    return {
        "default": {
            "interactions": len(default.interactions),
            "items": len(default.items),
            "seconds": default_s,
        },
        "large": {"interactions": len(big.interactions), "items": len(big.items), "seconds": big_s},
        "write_amazon2023_large": {
            "seconds": write_s,
            "reviews_mb": round(reviews.stat().st_size / 2**20, 1),
            "meta_mb": round(meta.stat().st_size / 2**20, 1),
        },
    }


def tfidf_similarity(titles: list[str]) -> np.ndarray:
    tokens = [re.findall(r"[a-z0-9'\-]+", t.lower()) for t in titles]
    vocab = {w: i for i, w in enumerate(sorted({w for t in tokens for w in t}))}
    x = np.zeros((len(titles), len(vocab)))
    for row, words in enumerate(tokens):
        for w in words:
            x[row, vocab[w]] += 1
    x *= np.log(len(titles) / (1 + (x > 0).sum(axis=0)))
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    return x @ x.T


def evaluate(score, rows: pd.DataFrame, k: int = 10) -> dict:
    hits, ndcg = 0, 0.0
    for history, target in zip(rows["history"], rows["target"], strict=True):
        history = np.asarray(history)
        s = score(history).astype(float)
        s[0] = -np.inf
        s[history] = -np.inf
        rank = int((s > s[target]).sum())
        if rank < k:
            hits += 1
            ndcg += 1.0 / np.log2(rank + 2)
    return {"recall@10": round(hits / len(rows), 4), "ndcg@10": round(ndcg / len(rows), 4)}


def signal(tmp: Path) -> dict:
    ds = prepare(generate(), tmp / "dataset", ProtocolSettings())
    n = int(ds.items["item_id"].max())
    transitions, counts = np.zeros((n + 1, n + 1)), np.zeros(n + 1)
    for seq, n_train in zip(ds.sequences["items"], ds.sequences["n_train"], strict=True):
        seq = np.asarray(seq[:n_train])
        counts[seq] += 1
        np.add.at(transitions, (seq[:-1], seq[1:]), 1)
    titles = [""] + ds.items.sort_values("item_id")["title"].tolist()
    sim = tfidf_similarity(titles)
    pop = counts / counts.max()

    def markov(h):
        return transitions[h[-1]] / (transitions[h[-1]].sum() + 1)

    scorers = {
        "popularity": lambda h: pop,
        "markov_id": lambda h: markov(h) + 1e-3 * pop,
        "tfidf_title": lambda h: sim[h[-1]] + 1e-3 * pop,
        "markov_id+tfidf_title": lambda h: markov(h) + 0.3 * sim[h[-1]] + 1e-3 * pop,
    }
    test = pd.read_parquet(ds.root / "test.parquet")
    rare = test[counts[test["target"].to_numpy()] <= RARE_MAX_COUNT]
    return {
        "dataset": {k: ds.manifest["counts"][k] for k in ("users", "items", "interactions")},
        "test_rows": len(test),
        "rare_test_rows": len(rare),
        "all_targets": {name: evaluate(f, test) for name, f in scorers.items()},
        "rare_targets": {name: evaluate(f, rare) for name, f in scorers.items()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "synthetic_dataset.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = {
            "benchmark": "synthetic_dataset",
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "speed": speed(Path(tmp)),
            "signal": signal(Path(tmp)),
        }
    atomic_write_json(args.out, result)
    print(json.dumps(result["speed"], indent=1))
    for part in ("all_targets", "rare_targets"):
        print(
            f"\n{part} ({result['signal']['test_rows' if part == 'all_targets' else 'rare_test_rows']} rows)"
        )
        print(pd.DataFrame(result["signal"][part]).T.to_string())
    print(f"\nwritten to {args.out}")


if __name__ == "__main__":
    main()
