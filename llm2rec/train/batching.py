"""Which examples land in which optimizer step: a pure function of (seed, epoch), whatever the number of
processes, so N processes equal one process with the same batch and a resume is exact without relying on
sampler state."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from llm2rec.errors import ConfigError
from llm2rec.train.config import LoopConfig


def plan_epoch(
    num_examples: int, config: LoopConfig, epoch: int, lengths: Sequence[int] | None = None
) -> list[list[int]]:
    """The global batches of one epoch: ``batch_size`` example indices each, a pure function of
    (seed, epoch). The incomplete last batch is dropped. With ``lengths``, examples are sorted by length
    within chunks of ``group_size`` batches so each batch (and each micro-batch) holds similar lengths;
    the batch order is then shuffled so long and short batches alternate across the epoch."""
    size = config.batch_size
    steps = num_examples // size
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    order = torch.randperm(num_examples, generator=generator).tolist()[: steps * size]
    if lengths is not None:
        chunk = size * config.group_size
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda j: -lengths[j])
        ]
    batches = [order[k * size : (k + 1) * size] for k in range(steps)]
    if lengths is not None:
        batches = [batches[k] for k in torch.randperm(steps, generator=generator).tolist()]
    return batches


def micro_batches_for(global_batch: list[int], micro_batch: int, rank: int, world: int) -> list[list[int]]:
    """This process's micro-batches of a global batch: micro-batch j goes to process j % world."""
    chunks = [global_batch[i : i + micro_batch] for i in range(0, len(global_batch), micro_batch)]
    return chunks[rank::world]


class StepSampler:
    """Yields this process's micro-batch index lists for steps ``start..max_steps-1``, in order."""

    def __init__(self, num_examples, config, lengths, start_step, rank, world):
        self.num_examples, self.config, self.lengths = num_examples, config, lengths
        self.start_step, self.rank, self.world = start_step, rank, world
        self.steps_per_epoch = num_examples // config.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        step = self.start_step
        while step < self.config.max_steps:
            epoch, position = divmod(step, self.steps_per_epoch)
            batches = plan_epoch(self.num_examples, self.config, epoch, self.lengths)
            for global_batch in batches[position:]:
                if step >= self.config.max_steps:
                    return
                yield from micro_batches_for(global_batch, self.config.micro_batch, self.rank, self.world)
                step += 1

    def __len__(self) -> int:
        per_step = self.config.batch_size // (self.config.micro_batch * self.world)
        return (self.config.max_steps - self.start_step) * per_step


class LengthTagged(list):
    """Examples plus their token counts (``.lengths``, one per example), for length-grouped batching."""

    def __init__(self, examples: Sequence, lengths: Sequence[int]):
        super().__init__(examples)
        self.lengths = list(lengths)
        if len(self.lengths) != len(self):
            raise ValueError(f"{len(self.lengths)} lengths for {len(self)} examples")


def token_counts(tokenizer, texts: Sequence[str], max_length: int) -> dict[str, int]:
    """Each distinct text's token count after truncation to ``max_length`` (what its padded row costs)."""
    distinct = sorted(set(texts))
    ids = tokenizer(distinct, truncation=True, max_length=max_length)["input_ids"]
    return {text: len(row) for text, row in zip(distinct, ids, strict=True)}


def dataset_lengths(dataset) -> list[int]:
    """Per-example lengths for length grouping: ``dataset.lengths`` if it has one, else ``len(input_ids)``."""
    lengths = getattr(dataset, "lengths", None)
    if lengths is not None:
        return list(lengths)
    try:
        return [len(dataset[i]["input_ids"]) for i in range(len(dataset))]
    except (TypeError, KeyError) as exc:
        raise ConfigError("length_grouped needs a dataset with .lengths or items with 'input_ids'") from exc
