"""The softmax over the catalogue in item chunks equals the full one, loss and gradients (issue 38 §2)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from llm2rec.seqrec.chunked_loss import full_softmax_loss


def _leaves(seed: int, n: int = 37, items: int = 53, d: int = 8):
    g = torch.Generator().manual_seed(seed)
    states = (torch.randn(n, d, generator=g) * 3).requires_grad_()
    table = torch.randn(items, d, generator=g).requires_grad_()
    targets = torch.randint(0, items, (n,), generator=g)
    targets[:3] = targets[3]  # repeated targets: their one-hot parts add up
    return states, table, targets


@pytest.mark.parametrize("budget", [4 * 37 * 1, 4 * 37 * 7, 4 * 37 * 52])  # chunks of 1, 7 and 52 items
def test_chunks_give_the_full_softmax_loss_and_gradients(budget):
    states, table, targets = _leaves(0)
    full = F.cross_entropy(states @ table.T, targets)
    full.backward()
    expected = (full.detach(), states.grad.clone(), table.grad.clone())
    states.grad = table.grad = None
    chunked = full_softmax_loss(states, table, targets, memory_budget=budget)
    chunked.backward()
    assert chunked.grad_fn is not None and "Chunked" in type(chunked.grad_fn).__name__
    torch.testing.assert_close(chunked.detach(), expected[0], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(states.grad, expected[1], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(table.grad, expected[2], rtol=1e-5, atol=1e-6)


def test_under_the_budget_the_plain_path_runs_bit_for_bit():
    states, table, targets = _leaves(1)
    assert torch.equal(
        full_softmax_loss(states, table, targets, 1 << 30), F.cross_entropy(states @ table.T, targets)
    )


def test_a_recommender_trains_the_same_with_a_tiny_budget(cyclic_dataset):
    """One epoch of SASRec with the logits in chunks of a few items: the same losses and weights."""
    from llm2rec.seqrec.config import config_from_overrides
    from llm2rec.seqrec.data import SeqRecData
    from llm2rec.seqrec.registry import build_model
    from llm2rec.seqrec.trainer import fit

    data = SeqRecData.from_dataset(cyclic_dataset)
    runs = []
    for budget in (1 << 30, 4 * 64 * 3):  # plain, then chunks of about 3 items
        cfg = config_from_overrides(hidden=16, epochs=2, progress=False, memory_budget=budget).resolved(False)
        torch.manual_seed(0)
        model = build_model(cfg, data, None)
        result = fit(model, data, cfg.train, seed=0)
        runs.append(([p["loss"] for p in result.curve], model.state_dict()))
    assert runs[0][0] == pytest.approx(runs[1][0], rel=1e-5)
    for key, value in runs[0][1].items():
        torch.testing.assert_close(runs[1][1][key], value, rtol=1e-4, atol=1e-4)  # float rounding, 2 epochs
