"""The recommenders' AdamW without the private fused kernel: the public ``torch.optim.AdamW`` takes over
and trains the same steps (issue 36)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from llm2rec.seqrec import optim  # noqa: E402


def _train(make_optimizer, steps: int = 6):
    """A small regression trained from fixed weights and data; the weights after each step, and losses."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    x, y = torch.randn(32, 6), torch.randn(32, 1)
    opt = make_optimizer(model.parameters())
    weights, losses = [], []
    for step in range(steps):
        opt.zero_grad()
        loss = (model(x) - y).pow(2).mean()
        loss.backward()
        if step == 2:
            model[2].bias.grad = None  # a parameter without a gradient is not updated, as in torch
        opt.step()
        losses.append(loss.item())
        weights.append([p.detach().clone() for p in model.parameters()])
    return weights, losses


def _ours(params):
    return optim.AdamW(params, lr=1e-2, weight_decay=1e-2)


def _assert_same_steps(a, b):
    for step_a, step_b in zip(a, b, strict=True):
        for pa, pb in zip(step_a, step_b, strict=True):
            torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)


def test_the_private_kernel_is_used_where_it_works():
    if getattr(torch, "_fused_adamw_", None) is None:
        pytest.skip("this torch has no torch._fused_adamw_")
    opt = _ours(torch.nn.Linear(2, 2).parameters())
    assert opt._fused is not None and opt._public is None


def test_without_the_private_kernel_the_public_adamw_trains_the_same_steps(monkeypatch):
    reference, _ = _train(_ours)  # as found (the fused kernel on this torch)
    monkeypatch.delattr(torch, "_fused_adamw_", raising=False)
    opt = _ours(torch.nn.Linear(2, 2).parameters())
    assert opt._fused is None and isinstance(opt._public, torch.optim.AdamW)
    fallback, losses = _train(_ours)
    assert losses[-1] < losses[0]  # it trains
    _assert_same_steps(fallback, reference)
    plain, _ = _train(lambda ps: torch.optim.AdamW(ps, lr=1e-2, weight_decay=1e-2))
    _assert_same_steps(fallback, plain)


def test_a_private_kernel_that_refuses_the_call_is_not_used(monkeypatch):
    def changed_signature(*args, **kwargs):
        raise TypeError("_fused_adamw_() got an unexpected keyword argument 'beta1'")

    reference, _ = _train(_ours)
    monkeypatch.setattr(torch, "_fused_adamw_", changed_signature, raising=False)
    fallback, losses = _train(_ours)
    assert losses[-1] < losses[0]
    _assert_same_steps(fallback, reference)
