"""Cross-entropy over a whole catalogue without the whole logit matrix: exact, in bounded memory.

A recommender's training loss is a softmax over every item: ``n`` supervised positions × ``N`` items of
logits (2,560 positions × a million items is 10 GB in float32, twice over with its gradient). When that
block exceeds the memory budget, :func:`full_softmax_loss` computes the same loss in item chunks: the
forward pass keeps a running log-sum-exp per position, the backward pass recomputes each chunk's logits
and adds its share of both gradients (softmax − one-hot, times the other factor). Nothing is sampled or
approximated: the loss and gradients equal ``F.cross_entropy`` on the full logits up to float rounding
(``tests/seqrec/test_chunked_loss.py``). Under the budget the plain path runs, bit for bit as before.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def full_softmax_loss(
    states: torch.Tensor, items: torch.Tensor, targets: torch.Tensor, memory_budget: int | None = None
) -> torch.Tensor:
    """Mean cross-entropy of ``states`` (n, d) against every row of ``items`` (N, d), the right one
    ``targets`` (n,) in 0..N−1; in chunks of items when the (n, N) float32 logits exceed
    ``memory_budget`` bytes."""
    n, num_items = states.shape[0], items.shape[0]
    if memory_budget is None or n * num_items * 4 <= memory_budget:
        return F.cross_entropy(states @ items.T, targets)
    chunk = max(1, memory_budget // (4 * max(n, 1)))
    return _ChunkedCrossEntropy.apply(states, items, targets, chunk)


class _ChunkedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, states, items, targets, chunk: int):
        lse = torch.full((states.shape[0],), float("-inf"), dtype=states.dtype, device=states.device)
        for start in range(0, items.shape[0], chunk):
            block = states @ items[start : start + chunk].T
            lse = torch.logaddexp(lse, torch.logsumexp(block, dim=1))
        target_logits = (states * items[targets]).sum(dim=1)
        ctx.save_for_backward(states, items, targets, lse)
        ctx.chunk = chunk
        return (lse - target_logits).mean()

    @staticmethod
    def backward(ctx, grad):
        states, items, targets, lse = ctx.saved_tensors
        scale = grad / states.shape[0]
        grad_states = torch.zeros_like(states)
        grad_items = torch.zeros_like(items)
        for start in range(0, items.shape[0], ctx.chunk):
            part = items[start : start + ctx.chunk]
            probs = torch.exp(states @ part.T - lse[:, None]) * scale  # softmax share of this chunk
            grad_states += probs @ part
            grad_items[start : start + ctx.chunk] += probs.T @ states
        grad_states -= scale * items[targets]  # the one-hot part
        grad_items.index_add_(0, targets, -scale * states)
        return grad_states, grad_items, None, None
