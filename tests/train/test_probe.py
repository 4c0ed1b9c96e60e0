"""The valid-split knn probe that chooses MNTP/contrastive checkpoints: it must score exactly the vectors
that ``llm2rec embed`` writes, with exactly the knn baseline's metrics, on the valid split only."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from llm2rec.embed.encoder import Encoder
from llm2rec.embed.extract import embed_items
from llm2rec.llm.backbone import save_pretrained_atomic
from llm2rec.llm.bidirectional import enable_bidirectional
from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
from llm2rec.seqrec import run_seqrec
from llm2rec.train.probe import ValidKnnProbe, with_probe_selection
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
    metrics = with_probe_selection(lambda m, loader, acc: {"loss": 2.5}, probe)(model, None)
    assert metrics["loss"] == 2.5 and metrics["selection"] == -metrics["knn_recall@20"]
    assert set(with_probe_selection(None, probe)(model, None)) >= {"selection", "knn_ndcg@20"}


def test_probe_reports_its_standard_error_and_the_paired_difference_from_its_best_evaluation(setting):
    tokenizer, model, dataset = setting
    other = enable_bidirectional(make_tiny_model("llama", tokenizer, seed=11)).eval()
    probe = ValidKnnProbe(dataset, tokenizer, max_length=32)
    first = probe(model)
    assert "knn_recall@20_vs_best" not in first  # nothing to compare with yet
    p, n = first["knn_recall@20"], len(probe.valid.targets)
    assert first["knn_recall@20_se"] == pytest.approx(np.sqrt(p * (1 - p) / (n - 1)))  # 0/1 hits, no ties

    second = probe(other)
    assert second["knn_recall@20"] != p  # the two models must rank differently for the test to mean anything
    assert second["knn_recall@20_vs_best"] == pytest.approx(second["knn_recall@20"] - p)
    assert second["knn_recall@20_vs_best_se"] > 0
    best = max(p, second["knn_recall@20"])

    again = probe(model)  # compared with the better of the two, whichever it was
    assert again["knn_recall@20_vs_best"] == pytest.approx(p - best)
    assert (again["knn_recall@20_vs_best_se"] == 0) == (best == p)  # identical rankings: no spread


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


def test_sasrec_probe_trains_the_recommender_seqrec_trains_on_the_valid_split_only(setting, tmp_path):
    """select_by=sasrec scores the vectors with exactly `llm2rec seqrec --model sasrec` (same seed, same
    early stopping): its best valid metrics, never a test number."""
    from llm2rec.train.probe import ValidSASRecProbe

    tokenizer, model, dataset = setting
    settings = {"patience": 3, "hidden": 32}  # the run's own seqrec settings reach the probe
    probe = ValidSASRecProbe(dataset, tokenizer, max_length=32, seed=7, seqrec=settings)
    assert probe.seqrec.train.patience == 3 and probe.seqrec.ffn == 64
    metrics = probe(model)
    np.save(tmp_path / "v.npy", probe.vectors(model).numpy())
    run_seqrec(dataset.root, model="sasrec", embeddings=tmp_path / "v.npy", seeds=[7], **settings,
               progress=False, plots=False, out_dir=tmp_path / "sasrec")  # fmt: skip
    seed = json.loads((tmp_path / "sasrec" / "seed-7" / "metrics.json").read_text())
    for k in ("recall@10", "recall@20", "ndcg@10", "ndcg@20"):
        assert metrics[f"sasrec_{k}"] == pytest.approx(seed["valid"][k])
        assert metrics[f"knn_{k}"] == pytest.approx(probe.knn(probe.vectors(model).numpy())[f"knn_{k}"])
    assert metrics["sasrec_best_epoch"] == seed["best_epoch"]
    assert not any(key.startswith("test") for key in metrics)


def test_select_by_sasrec_keeps_the_checkpoint_with_the_best_valid_sasrec(setting, tmp_path):
    from llm2rec.train.contrastive import run_contrastive
    from llm2rec.train.outputs import read_metrics

    tokenizer, _, dataset = setting
    base = save_pretrained_atomic(make_tiny_model("llama", tokenizer, seed=4), tokenizer, tmp_path / "base")
    out = run_contrastive(
        base, dataset.root, tmp_path / "c", preset="cpu", max_steps=2, eval_every=1, batch_size=8,
        micro_batch=8, lr=5e-3, select_by="sasrec", progress=False,
    )  # fmt: skip
    evals = [e for e in read_metrics(out) if e["split"] == "eval"]
    assert all("sasrec_recall@20" in e and "knn_recall@20" in e for e in evals)
    best = max(evals, key=lambda e: (e["sasrec_recall@20"], -e["step"]))
    record = json.loads((out / "contrastive.json").read_text())
    assert record["best_step"] == best["step"] and record["config"]["select_by"] == "sasrec"


def test_the_sasrec_probe_leaves_the_training_rngs_as_they_were(setting):
    """Evaluating a checkpoint must not change what the stage trains next (its dropout, its batches)."""
    import random

    from llm2rec.train.probe import ValidSASRecProbe

    tokenizer, model, dataset = setting
    probe = ValidSASRecProbe(dataset, tokenizer, max_length=32, seed=7, seqrec={"patience": 2})
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    probe(model)
    after = (torch.rand(3), np.random.rand(3), random.random())
    torch.testing.assert_close(after[0], expected[0])
    np.testing.assert_array_equal(after[1], expected[1])
    assert after[2] == expected[2]


def test_select_by_sasrec_trains_the_same_weights_as_select_by_knn(setting, tmp_path):
    from llm2rec.train.contrastive import run_contrastive
    from llm2rec.train.outputs import read_metrics

    tokenizer, _, dataset = setting
    base = save_pretrained_atomic(make_tiny_model("llama", tokenizer, seed=4), tokenizer, tmp_path / "base")
    losses = {}
    for select_by in ("knn", "sasrec"):
        out = run_contrastive(
            base, dataset.root, tmp_path / select_by, preset="cpu", max_steps=3, eval_every=1, log_every=1,
            batch_size=8, micro_batch=8, lr=5e-3, select_by=select_by, progress=False,
        )  # fmt: skip
        losses[select_by] = [e["loss"] for e in read_metrics(out) if e["split"] == "train"]
    assert len(losses["knn"]) == 3 and losses["sasrec"] == losses["knn"]
