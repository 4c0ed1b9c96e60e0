"""Evaluation inside the training loop: which process scores which held-out micro-batch, and the default
``eval_fn`` (the mean of the stage's loss over the held-out set)."""

from __future__ import annotations

from collections.abc import Mapping

import torch


def eval_loader(dataset, collate_fn, micro_batch: int, accelerator) -> OnDevice:
    """The same micro-batches as one process would use, dealt round-robin, already on the device.

    The default (per-batch mean) eval loss is then independent of the number of processes. Processes may
    get one batch less, so a loss_fn with collectives (all-gather) needs an eval set of whole rounds or its
    own eval_fn.
    """
    rank, world = accelerator.process_index, accelerator.num_processes
    indices = list(range(len(dataset)))
    batches = [indices[i : i + micro_batch] for i in range(0, len(indices), micro_batch)][rank::world]
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        collate_fn=collate_fn,
        num_workers=0,
        generator=torch.Generator(),
    )
    return OnDevice(loader, accelerator.device)


def mean_loss_eval(loss_fn):
    def evaluate(model, eval_loader, accelerator) -> dict:
        total = torch.zeros(2, device=accelerator.device)  # (sum of loss × examples, examples)
        for batch in eval_loader:
            loss, _ = loss_fn(model, batch, accelerator)
            size = batch_rows(batch)
            total += torch.stack(
                [loss.detach().float() * size, torch.tensor(float(size), device=total.device)]
            )
        total = accelerator.reduce(total, reduction="sum")
        return {"loss": (total[0] / total[1].clamp(min=1)).item()}

    return evaluate


def batch_rows(batch) -> int:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return value.shape[0]
    return 1


class OnDevice:
    """Iterates a loader and moves each batch to the device."""

    def __init__(self, loader, device) -> None:
        self.loader, self.device = loader, device

    def __iter__(self):
        from accelerate.utils import send_to_device

        for batch in self.loader:
            yield send_to_device(batch, self.device)

    def __len__(self) -> int:
        return len(self.loader)
