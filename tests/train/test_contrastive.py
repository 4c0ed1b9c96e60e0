"""Item-level contrastive learning: InfoNCE details, DDP gathering with gradient, and a tiny training run."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch
import torch.nn.functional as F

from llm2rec.train.contrastive import (
    TitlePairCollator,
    contrastive_loss,
    encode_batch,
    info_nce,
)
from llm2rec.train.outputs import read_metrics
from tests.embed.test_extract import tiny_titles, write_tiny_dataset


def test_info_nce_matches_cross_entropy_over_cosines():
    torch.manual_seed(0)
    q, k = torch.randn(4, 8), torch.randn(4, 8)
    ids = torch.arange(4)
    loss, acc = info_nce(q, k, ids, ids, temperature=0.2)
    scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T / 0.2
    assert torch.allclose(loss, F.cross_entropy(scores, torch.arange(4)))
    assert 0.0 <= acc.item() <= 1.0


def test_identical_titles_are_not_negatives():
    torch.manual_seed(0)
    q = torch.randn(3, 8)
    k = q.clone()
    k[1] = q[0]  # title 1 is the same text as title 0: its view looks exactly like 0's positive
    distinct = torch.tensor([0, 1, 2])
    same = torch.tensor([0, 0, 2])
    with_false_negative, _ = info_nce(q, k, distinct, distinct, 0.2)
    masked, _ = info_nce(q, k, same, same, 0.2)
    assert masked < with_false_negative
    # masking removes exactly the duplicate column from row 0's softmax
    scores = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).T / 0.2
    row0 = F.cross_entropy(scores[0, [0, 2]][None], torch.tensor([0]))
    row1 = F.cross_entropy(scores[1, [1, 2]][None], torch.tensor([0]))
    row2 = F.cross_entropy(scores[2][None], torch.tensor([2]))
    assert torch.allclose(masked, (row0 + row1 + row2) / 3)


def test_symmetric_is_mean_of_both_directions():
    torch.manual_seed(1)
    a, b, ids = torch.randn(5, 6), torch.randn(5, 6), torch.arange(5)
    sym, _ = contrastive_loss(a, b, ids, 0.1, symmetric=True)
    one, _ = info_nce(a, b, ids, ids, 0.1)
    other, _ = info_nce(b, a, ids, ids, 0.1)
    assert torch.allclose(sym, (one + other) / 2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank, world, port, x, weight, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        w = weight.clone().requires_grad_(True)
        local = x[rank * 3 : (rank + 1) * 3]
        emb = local @ w
        view_a, view_b = emb, emb * 1.1 + 0.05
        ids = torch.arange(rank * 3, (rank + 1) * 3)
        loss, metrics = contrastive_loss(view_a, view_b, ids, 0.2, symmetric=True)
        loss.backward()
        grad = w.grad.clone()
        torch.distributed.all_reduce(grad)  # what DDP does: average parameter gradients
        if rank == 0:
            torch.save({"grad": grad / world, "negatives": metrics["negatives"]}, out)
        torch.distributed.barrier()  # nobody tears down the group while the other still talks
    finally:
        torch.distributed.destroy_process_group()


def test_ddp_gather_with_gradient_equals_one_big_batch(tmp_path):
    torch.manual_seed(0)
    x, weight = torch.randn(6, 4), torch.randn(4, 5)
    out = tmp_path / "ddp.pt"
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), x, weight, out), nprocs=2, join=True)
    ddp = torch.load(out)
    assert ddp["negatives"] == 5  # 2 processes × 3 titles, minus the positive

    w = weight.clone().requires_grad_(True)
    emb = x @ w
    loss, _ = contrastive_loss(emb, emb * 1.1 + 0.05, torch.arange(6), 0.2, symmetric=True)
    loss.backward()
    assert torch.allclose(ddp["grad"], w.grad, atol=1e-6)


def test_collator_doubles_batch_and_pools_title_tokens_only():
    from llm2rec.llm.tiny import make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    batch = TitlePairCollator(tokenizer)([(3, "Nitrile Gloves"), (9, "Digital Caliper 6 inch")])
    assert batch["input_ids"].shape[0] == 4 and batch["text_ids"].tolist() == [3, 9]
    assert torch.equal(batch["input_ids"][:2], batch["input_ids"][2:])
    assert torch.equal(batch["pool_mask"], batch["attention_mask"])  # no special tokens in this tokenizer
    masked = TitlePairCollator(tokenizer, token_mask_probability=0.5, mask_token_id=64, seed=0)
    many = masked([(i, "Nitrile Gloves Large Box of 100 Safety Goggles") for i in range(8)])
    assert (many["input_ids"] == 64).any()
    assert not torch.equal(many["input_ids"][:8], many["input_ids"][8:])  # each view masked on its own


def _view_similarity(model, tokenizer, titles):
    """(mean cos of two views of the same title, mean cos of views of different titles) in train mode."""
    collate = TitlePairCollator(tokenizer)
    batch = collate(list(enumerate(titles)))
    model.train()
    with torch.no_grad():
        a, b = F.normalize(encode_batch(model, batch), dim=-1).chunk(2)
    sims = a @ b.T
    n = len(titles)
    same = sims.diagonal().mean().item()
    different = (sims.sum() - sims.diagonal().sum()).item() / (n * n - n)
    return same, different


def test_two_views_of_a_title_end_up_closer_than_different_titles(tmp_path):
    from transformers import AutoModel

    from llm2rec.embed.encoder import Encoder
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.bidirectional import enable_bidirectional, probe_bidirectional
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
    from llm2rec.train.contrastive import run_contrastive

    tokenizer = make_tiny_tokenizer()
    base = save_pretrained_atomic(make_tiny_model("qwen2", tokenizer, seed=2), tokenizer, tmp_path / "base")
    titles = tiny_titles(64)
    data = write_tiny_dataset(tmp_path / "ds", titles)
    untrained = enable_bidirectional(AutoModel.from_pretrained(base, attention_dropout=0.2))
    same_before, different_before = _view_similarity(untrained, tokenizer, titles[:32])
    out = run_contrastive(
        base, data, tmp_path / "cl", preset="cpu", max_steps=40, batch_size=16, micro_batch=16,
        lr=3e-3, warmup_steps=0, progress=False,
    )  # fmt: skip
    trained = AutoModel.from_pretrained(out)
    assert probe_bidirectional(trained)
    assert trained.config.attention_dropout == 0.2
    same, different = _view_similarity(trained, tokenizer, titles[:32])
    assert same > different + 0.5, (same, different)
    # training is what separates them: a random model's views of different titles are far more alike
    assert same - different > (same_before - different_before) + 0.15, (same_before, different_before)
    losses = [e["loss"] for e in read_metrics(out) if e["split"] == "train"]
    assert losses[-1] < losses[0]
    encoder = Encoder.load(out)
    assert encoder.pooling == "mean" and encoder.bidirectional
    stage = json.loads((out / "contrastive.json").read_text())
    assert stage["config"]["temperature"] == 0.2


def test_cli_contract(tmp_path):
    from typer.testing import CliRunner

    from llm2rec.cli import app
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    tokenizer = make_tiny_tokenizer()
    model_dir = save_pretrained_atomic(make_tiny_model("llama", tokenizer), tokenizer, tmp_path / "m")
    data = write_tiny_dataset(tmp_path / "ds", tiny_titles(40))
    args = ["contrastive", "--model", str(model_dir), "--dataset", str(data), "--out", str(tmp_path / "o")]
    done = CliRunner().invoke(
        app,
        [
            *args,
            "--max-steps",
            "2",
            "--preset",
            "cpu",
            "--batch-size",
            "16",
            "--micro-batch",
            "16",
            "--temperature",
            "0.1",
            "--set",
            "progress=false",
        ],
    )
    assert done.exit_code == 0, done.output
    stage = json.loads((tmp_path / "o" / "contrastive.json").read_text())
    assert stage["config"]["temperature"] == 0.1 and stage["config"]["max_steps"] == 2
    bad = CliRunner().invoke(app, [*args, "--max-steps", "2", "--set", "colour=1"])
    assert bad.exit_code != 0 and "colour" in str(bad.exception)


def test_cli_reports_the_valid_knn_probe_of_a_stage_without_a_held_out_loss(tmp_path):
    # The contrastive stage chooses its checkpoint on the valid knn probe and has no held-out loss of its
    # own: the command's summary once raised KeyError('loss') after a finished run.
    from typer.testing import CliRunner

    from llm2rec.cli import app
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
    from tests.seqrec.conftest import cyclic_sequences, write_loo_dataset

    tokenizer = make_tiny_tokenizer()
    model_dir = save_pretrained_atomic(make_tiny_model("llama", tokenizer), tokenizer, tmp_path / "m")
    data = write_loo_dataset(tmp_path / "ds", cyclic_sequences(40, 20, 5), num_items=20, max_history=5)
    args = [
        "contrastive",
        "--model",
        str(model_dir),
        "--dataset",
        str(data.root),
        "--out",
        str(tmp_path / "o"),
    ]
    settings = ["--batch-size", "8", "--micro-batch", "8", "--set", "eval_every=1", "--set", "progress=false"]
    done = CliRunner().invoke(app, [*args, "--max-steps", "2", "--preset", "cpu", *settings])
    assert done.exit_code == 0, done.output
    assert "valid knn Recall@20" in done.output and "held-out loss" not in done.output


def test_gradient_checkpointing_trains_the_same_weights_and_is_not_part_of_the_identity(tmp_path):
    """The cpu preset turns it on to halve the stage's memory: it must not change the model (dropout masks
    are recomputed identically; sums may round differently) nor make a finished stage look out of date."""
    from safetensors.torch import load_file

    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
    from llm2rec.train.config import identity
    from llm2rec.train.contrastive import build_config, run_contrastive

    tokenizer = make_tiny_tokenizer()
    base = save_pretrained_atomic(make_tiny_model("llama", tokenizer, seed=3), tokenizer, tmp_path / "base")
    data = write_tiny_dataset(tmp_path / "ds", tiny_titles(32))
    outs = {}
    for on in (False, True):
        outs[on] = run_contrastive(
            base, data, tmp_path / f"gc-{on}", preset="cpu", max_steps=3, batch_size=8, micro_batch=8,
            lr=3e-3, warmup_steps=0, log_every=1, progress=False, gradient_checkpointing=on,
        )  # fmt: skip
    losses = {on: [e["loss"] for e in read_metrics(out) if e["split"] == "train"] for on, out in outs.items()}
    assert losses[True] == pytest.approx(losses[False], rel=1e-5) and len(losses[True]) == 3
    weights = {on: load_file(str(out / "model.safetensors")) for on, out in outs.items()}
    # the same up to float rounding (the backward pass sums in another order), as with another thread count
    assert all(torch.allclose(weights[True][k], weights[False][k], atol=1e-5) for k in weights[False])
    assert build_config("cpu").gradient_checkpointing
    assert identity(build_config("cpu")) == identity(build_config("cpu", gradient_checkpointing=False))
