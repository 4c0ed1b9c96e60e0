"""AdamW for the downstream recommenders, without ``torch.optim``.

Creating any ``torch.optim`` optimizer imports ``torch._dynamo`` (about 1.5 s here), which is a sixth of
a whole 10-epoch SASRec run on Scientific. This is the same update as ``torch.optim.AdamW`` (decoupled
weight decay, bias-corrected moments, no amsgrad) on the same fused kernel ``torch.optim.AdamW(fused=True)``
calls (``torch._fused_adamw_``), or on ``torch._foreach_*`` ops where that kernel is missing; tested equal
to ``torch.optim.AdamW`` (``tests/seqrec/test_trainer.py``).
"""

from __future__ import annotations

import math

import torch


class AdamW:
    def __init__(self, params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, tuple(betas), eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [0] * len(self.params)
        self._fused = getattr(torch, "_fused_adamw_", None)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]  # as torch: no grad, no update
        for i in live:
            self.steps[i] += 1
        # Parameters that have been updated equally often share their bias corrections: one group each.
        for count in sorted({self.steps[i] for i in live}):
            group = [i for i in live if self.steps[i] == count]
            self._update(group, count)

    def _update(self, group: list[int], count: int) -> None:
        beta1, beta2 = self.betas
        params = [self.params[i] for i in group]
        grads = [self.params[i].grad for i in group]
        exp_avg = [self.exp_avg[i] for i in group]
        exp_avg_sq = [self.exp_avg_sq[i] for i in group]
        if self._fused is not None:
            steps = [torch.tensor(float(count), device=params[0].device) for _ in group]
            self._fused(params, grads, exp_avg, exp_avg_sq, [], steps, lr=self.lr, beta1=beta1, beta2=beta2,
                        weight_decay=self.weight_decay, eps=self.eps, amsgrad=False, maximize=False)  # fmt: skip
            return
        if self.weight_decay:
            torch._foreach_mul_(params, 1.0 - self.lr * self.weight_decay)
        torch._foreach_lerp_(exp_avg, grads, 1.0 - beta1)
        torch._foreach_mul_(exp_avg_sq, beta2)
        torch._foreach_addcmul_(exp_avg_sq, grads, grads, 1.0 - beta2)
        denom = torch._foreach_sqrt(exp_avg_sq)
        torch._foreach_div_(denom, math.sqrt(1.0 - beta2**count))
        torch._foreach_add_(denom, self.eps)
        torch._foreach_addcdiv_(params, exp_avg, denom, -self.lr / (1.0 - beta1**count))
