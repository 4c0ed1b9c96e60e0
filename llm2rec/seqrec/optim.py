"""AdamW for the downstream recommenders, without ``torch.optim``.

Creating any ``torch.optim`` optimizer imports ``torch._dynamo`` (about 1.5 s here), which is a sixth of
a whole 10-epoch SASRec run on Scientific. This is the same update as ``torch.optim.AdamW`` (decoupled
weight decay, bias-corrected moments, no amsgrad) on the same fused kernel ``torch.optim.AdamW(fused=True)``
calls (``torch._fused_adamw_``); tested equal to ``torch.optim.AdamW`` (``tests/seqrec/test_trainer.py``).

That kernel is private API: where it is missing, or refuses a call made with the arguments of the torch
this was written against (another torch version, a device without the kernel), the update is the public
``torch.optim.AdamW`` itself with its default (non-fused) implementation, the same update within float
tolerance; the import above is then paid once (``tests/seqrec/test_optim.py``).
"""

from __future__ import annotations

import torch


class AdamW:
    def __init__(self, params, lr: float, weight_decay: float = 0.0, betas=(0.9, 0.999), eps: float = 1e-8):
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.weight_decay, self.betas, self.eps = lr, weight_decay, tuple(betas), eps
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.steps = [0] * len(self.params)
        self._fused = _private_kernel(self.params[0] if self.params else None)
        self._public = None
        if self._fused is None and self.params:  # the public optimizer, its default (non-fused) kernels
            self._public = torch.optim.AdamW(
                self.params, lr=lr, betas=self.betas, eps=eps, weight_decay=weight_decay
            )

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        if self._public is not None:
            self._public.step()
            return
        live = [i for i, p in enumerate(self.params) if p.grad is not None]  # as torch: no grad, no update
        for i in live:
            self.steps[i] += 1
        # Parameters that have been updated equally often share their bias corrections: one group each.
        for count in sorted({self.steps[i] for i in live}):
            group = [i for i in live if self.steps[i] == count]
            self._update(group, count)

    def _update(self, group: list[int], count: int) -> None:
        params = [self.params[i] for i in group]
        grads = [self.params[i].grad for i in group]
        exp_avg = [self.exp_avg[i] for i in group]
        exp_avg_sq = [self.exp_avg_sq[i] for i in group]
        steps = [torch.tensor(float(count), device=params[0].device) for _ in group]
        _call_kernel(self._fused, params, grads, exp_avg, exp_avg_sq, steps, self.lr, self.betas,
                     self.weight_decay, self.eps)  # fmt: skip


def _call_kernel(kernel, params, grads, exp_avg, exp_avg_sq, steps, lr, betas, weight_decay, eps) -> None:
    """One AdamW update of ``params`` in place on ``torch._fused_adamw_``, called as
    ``torch.optim.AdamW(fused=True)`` calls it in torch 2.13."""
    kernel(params, grads, exp_avg, exp_avg_sq, [], steps, lr=lr, beta1=betas[0], beta2=betas[1],
           weight_decay=weight_decay, eps=eps, amsgrad=False, maximize=False)  # fmt: skip


def _private_kernel(like):
    """``torch._fused_adamw_`` if it exists and takes our call for tensors like ``like`` (tried once on a
    one-element copy, so a refusal changes no parameter), else ``None``."""
    kernel = getattr(torch, "_fused_adamw_", None)
    if kernel is None or like is None:
        return None
    param = torch.zeros(1, dtype=like.dtype, device=like.device)
    grad, exp_avg, exp_avg_sq = torch.ones_like(param), torch.zeros_like(param), torch.zeros_like(param)
    step = torch.tensor(1.0, device=like.device)
    try:
        with torch.no_grad():
            _call_kernel(
                kernel, [param], [grad], [exp_avg], [exp_avg_sq], [step], 1e-3, (0.9, 0.999), 0.0, 1e-8
            )
    except (RuntimeError, TypeError, NotImplementedError):
        return None
    return kernel
