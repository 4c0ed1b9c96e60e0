"""Evaluation inside the training loop: which process scores which held-out micro-batch, and the default
``eval_fn`` (the mean of the stage's loss over the held-out set).

Every process runs the same number of eval forwards (a sharded model all-gathers its weights in each one,
and a process that stopped early would leave the others waiting for ever): the micro-batches one process
would use are dealt round-robin, and a process left one short runs a *padding* batch, a copy of the first
micro-batch whose ``labels`` are all ignored (-100) and whose rows count for nothing (:meth:`EvalLoader.weighted`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import torch

IGNORE_INDEX = -100  # Hugging Face's label that no loss scores


def eval_plan(num_examples: int, micro_batch: int, rank: int, world: int) -> list[tuple[list[int], bool]]:
    """This process's eval micro-batches as (indices, is_padding): the same micro-batches as one process,
    micro-batch j on process j % world, and a padding batch on the processes left one short, so that
    every process gets ``ceil(batches / world)``. One process gets exactly the batches, never padding."""
    indices = list(range(num_examples))
    batches = [indices[i : i + micro_batch] for i in range(0, num_examples, micro_batch)]
    rounds = -(-len(batches) // world)
    mine = [(b, False) for b in batches[rank::world]]
    return mine + [(batches[0], True)] * (rounds - len(mine))


def eval_loader(dataset, collate_fn, micro_batch: int, accelerator) -> EvalLoader:
    """The eval set's micro-batches for this process (:func:`eval_plan`), already on the device."""
    plan = eval_plan(len(dataset), micro_batch, accelerator.process_index, accelerator.num_processes)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_sampler=[indices for indices, _ in plan],
        collate_fn=collate_fn,
        num_workers=0,
        generator=torch.Generator(),
    )
    return EvalLoader(loader, accelerator.device, [padding for _, padding in plan])


class EvalLoader:
    """Iterates this process's eval batches on the device. A padding batch (see the module docstring) has
    every ``labels`` tensor set to -100, so an ``eval_fn`` that weighs by scored labels ignores it as it
    is; one that counts rows iterates :meth:`weighted` instead, which gives each batch's real rows."""

    def __init__(self, loader, device, padding: list[bool]) -> None:
        self.loader, self.device, self.padding = loader, device, padding

    def weighted(self) -> Iterator[tuple[dict, int]]:
        """(batch, rows that count): 0 for a padding batch."""
        for batch, padding in zip(OnDevice(self.loader, self.device), self.padding, strict=True):
            yield (ignore_labels(batch), 0) if padding else (batch, batch_rows(batch))

    def __iter__(self):
        for batch, _ in self.weighted():
            yield batch

    def __len__(self) -> int:
        return len(self.padding)


def ignore_labels(batch):
    """``batch`` with every ``labels`` tensor replaced by -100 (nothing to score)."""
    if isinstance(batch, Mapping) and isinstance(batch.get("labels"), torch.Tensor):
        return {**batch, "labels": torch.full_like(batch["labels"], IGNORE_INDEX)}
    return batch


def mean_loss_eval(loss_fn):
    def evaluate(model, eval_loader, accelerator) -> dict:
        total = torch.zeros(2, device=accelerator.device)  # (sum of loss × examples, examples)
        batches = eval_loader.weighted() if hasattr(eval_loader, "weighted") else _rows(eval_loader)
        for batch, size in batches:
            loss, _ = loss_fn(model, batch, accelerator)  # a padding batch too: every process runs as many
            if size:
                total += torch.stack(
                    [loss.detach().float() * size, torch.tensor(float(size), device=total.device)]
                )
        total = accelerator.reduce(total, reduction="sum")
        return {"loss": (total[0] / total[1].clamp(min=1)).item()}

    return evaluate


def _rows(loader):
    for batch in loader:
        yield batch, batch_rows(batch)


def batch_rows(batch) -> int:
    if isinstance(batch, Mapping):
        for value in batch.values():
            if isinstance(value, torch.Tensor) and value.dim() > 0:
                return value.shape[0]
    return 1


def evaluate_model(model, loader, eval_fn, accelerator) -> dict:
    """``eval_fn`` on ``model`` in eval mode, under no_grad and the run's autocast; the model is put back in
    training mode. Under DDP the bare module is evaluated (the wrapper would broadcast its buffers on every
    forward, for nothing); a sharded (FSDP) model is evaluated as it is, its forward gathers the weights."""
    bare = model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    model.eval()
    try:
        with torch.no_grad(), accelerator.autocast():
            metrics = eval_fn(bare, loader, accelerator)
    finally:
        model.train()
    if "loss" not in metrics and "selection" not in metrics:
        raise ValueError("eval_fn must return a dict with 'loss' or 'selection'")
    return metrics


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
