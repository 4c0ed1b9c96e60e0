"""The valid-split knn probe that chooses MNTP/contrastive checkpoints: it must score exactly the vectors
that ``llm2rec embed`` writes, with exactly the knn baseline's metrics, on the valid split only."""

from __future__ import annotations

import json

import numpy as np
import pytest

from llm2rec.embed.encoder import Encoder
from llm2rec.embed.extract import embed_items
from llm2rec.llm.backbone import save_pretrained_atomic
from llm2rec.llm.bidirectional import enable_bidirectional
from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
from llm2rec.seqrec import run_seqrec
from llm2rec.train.probe import ValidKnnProbe, with_knn_selection
from tests.seqrec.conftest import cyclic_sequences, write_loo_dataset


@pytest.fixture
def setting(tmp_path):
    tokenizer = make_tiny_tokenizer()
    model = enable_bidirectional(make_tiny_model("llama", tokenizer, seed=3)).eval()
    dataset = write_loo_dataset(tmp_path / "ds", cyclic_sequences(60, 30, 7), num_items=30, max_history=5)
    return tokenizer, model, dataset


def test_probe_scores_the_extracted_vectors_with_the_knn_baseline(setting, tmp_path):
    tokenizer, model, dataset = setting
    probe = ValidKnnProbe(dataset, tokenizer, max_length=32)
    vectors = probe.vectors(model).numpy()
    saved = save_pretrained_atomic(model, tokenizer, tmp_path / "m")
    embed_items(Encoder.load(saved, pooling="mean", bidirectional=True), dataset.root, tmp_path / "v.npy")
    np.testing.assert_allclose(np.load(tmp_path / "v.npy"), vectors, atol=1e-5)

    metrics = probe(model)
    run_seqrec(dataset.root, model="knn", embeddings=tmp_path / "v.npy", out_dir=tmp_path / "knn")
    valid = json.loads((tmp_path / "knn" / "seed-none" / "metrics.json").read_text())["valid"]
    for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20"):
        assert metrics[f"knn_{k}"] == pytest.approx(valid[k])


def test_selection_is_minus_the_valid_recall_and_keeps_the_stage_metrics(setting):
    tokenizer, model, dataset = setting
    probe = ValidKnnProbe(dataset, tokenizer, max_length=32)
    metrics = with_knn_selection(lambda m, loader, acc: {"loss": 2.5}, probe)(model, None)
    assert metrics["loss"] == 2.5 and metrics["selection"] == -metrics["knn_recall@20"]
    assert set(with_knn_selection(None, probe)(model, None)) >= {"selection", "knn_ndcg@20"}


def test_mntp_keeps_the_checkpoint_with_the_best_valid_knn(setting, tmp_path):
    from llm2rec.train.mntp import run_mntp
    from llm2rec.train.outputs import read_metrics

    tokenizer, model, dataset = setting
    base = save_pretrained_atomic(make_tiny_model("llama", tokenizer, seed=4), tokenizer, tmp_path / "base")
    out = run_mntp(
        base, dataset.root, tmp_path / "mntp", preset="cpu", max_steps=4, eval_every=1, batch_size=8,
        micro_batch=8, lr=5e-3, progress=False,
    )  # fmt: skip
    evals = [e for e in read_metrics(out) if e["split"] == "eval"]
    assert all("knn_recall@20" in e and "loss" in e for e in evals)
    record = json.loads((out / "mntp.json").read_text())
    best = max((e for e in evals if e["step"] > 0), key=lambda e: (e["knn_recall@20"], -e["step"]))
    assert record["best_step"] == best["step"] and record["config"]["select_by"] == "knn"
