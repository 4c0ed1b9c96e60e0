"""benchmarks/probe_noise.py: each file's valid Recall@20 is the knn baseline's, and a pair's paired
difference is the difference of the two recalls, with no spread for identical rankings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llm2rec.seqrec import run_seqrec
from tests.benchmarks.conftest import load_benchmark
from tests.seqrec.conftest import cyclic_sequences, write_loo_dataset


@pytest.fixture(scope="module")
def probe_noise():
    return load_benchmark("probe_noise")


def _vectors(path: Path, num_items: int, seed: int) -> Path:
    vectors = np.random.default_rng(seed).normal(size=(num_items + 1, 8)).astype(np.float32)
    vectors[0] = 0.0
    np.save(path, vectors)
    return path


def test_scores_are_the_knn_baselines_valid_recall_and_pairs_are_paired(probe_noise, tmp_path):
    dataset = write_loo_dataset(tmp_path / "ds", cyclic_sequences(80, 30, 7), num_items=30, max_history=5)
    a, b = _vectors(tmp_path / "a.npy", 30, 1), _vectors(tmp_path / "b.npy", 30, 2)
    out = tmp_path / "noise.json"
    probe_noise.main(["--dataset", str(dataset.root), f"first={a}", str(b), f"same={a}", "--json", str(out)])
    result = json.loads(out.read_text())

    scores = {s["file"]: s["recall@20"] for s in result["files"]}
    assert list(scores) == ["first", "b.npy", "same"]
    run_seqrec(dataset.root, model="knn", embeddings=a, out_dir=tmp_path / "knn")
    valid = json.loads((tmp_path / "knn" / "seed-none" / "metrics.json").read_text())["valid"]
    assert scores["first"] == pytest.approx(valid["recall@20"])
    assert scores["first"] != scores["b.npy"]  # otherwise the pair below proves nothing

    pairs = {(p["a"], p["b"]): p for p in result["pairs"]}
    assert pairs[("first", "b.npy")]["b_minus_a"] == pytest.approx(scores["b.npy"] - scores["first"])
    assert pairs[("first", "b.npy")]["paired_se"] > 0
    assert pairs[("first", "same")]["b_minus_a"] == 0 and pairs[("first", "same")]["paired_se"] == 0
    assert result["valid_rows"] == 80


def test_two_files_with_one_label_are_refused(probe_noise, tmp_path):
    with pytest.raises(SystemExit):
        probe_noise.main(
            ["--dataset", str(tmp_path), str(tmp_path / "x" / "v.npy"), str(tmp_path / "y" / "v.npy")]
        )
