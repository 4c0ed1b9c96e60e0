"""The CSFT examples: (history titles → next title) pairs, tokenized with loss on the target only, and
padded into batches. See :mod:`llm2rec.train.csft` for the objective and the two deliberate differences
from the official code (position ids that skip padding, logits for target positions only)."""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch

IGNORE = -100


@dataclass
class CSFTPair:
    history_titles: list[str]
    target_title: str


def format_prompt(history_titles, config) -> str:
    return config.prompt_template.format(history=config.history_separator.join(history_titles))


def encode_pair(pair: CSFTPair, tokenizer, config) -> dict | None:
    """Token ids and labels of one pair; ``None`` when the target alone does not fit ``max_length``.

    Labels are the target ids (title, "\\n", EOS) and ``IGNORE`` on every prompt token. The prompt keeps
    its newest tokens (left truncation); the target is never cut.
    """
    prompt = tokenizer(format_prompt(pair.history_titles, config), add_special_tokens=False)["input_ids"]
    target = tokenizer(config.target_template.format(title=pair.target_title), add_special_tokens=False)[
        "input_ids"
    ] + [tokenizer.eos_token_id]
    room = config.max_length - len(target)
    if room < 1:
        return None
    truncated = len(prompt) > room
    prompt = prompt[-room:]
    return {
        "input_ids": prompt + target,
        "labels": [IGNORE] * len(prompt) + target,
        "prompt_len": len(prompt),
        "truncated": truncated,
    }


class CSFTDataset(torch.utils.data.Dataset):
    """Encoded pairs, with ``lengths`` for length-grouped batching."""

    def __init__(self, pairs: list[CSFTPair], tokenizer, config):
        encoded = [encode_pair(p, tokenizer, config) for p in pairs]
        self.examples = [e for e in encoded if e is not None]
        self.dropped_too_long = len(encoded) - len(self.examples)
        self.truncated = sum(e["truncated"] for e in self.examples)
        self.lengths = [len(e["input_ids"]) for e in self.examples]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        return self.examples[index]


class CSFTCollator:
    """Left-pads a list of encoded pairs into tensors.

    Left padding puts every target at the end of its row, so the loss needs only the last
    ``max target length + 1`` positions' logits (``logits_to_keep``). ``position_ids`` count real tokens
    only, so padding never shifts a sequence's positions.
    """

    def __init__(self, pad_token_id: int, pad_to_multiple_of: int | None = 8):
        self.pad_token_id, self.multiple = pad_token_id, pad_to_multiple_of

    def __call__(self, items: list[dict]) -> dict:
        width = max(len(x["input_ids"]) for x in items)
        if self.multiple:
            width = -(-width // self.multiple) * self.multiple
        input_ids = torch.full((len(items), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(items), width), IGNORE, dtype=torch.long)
        attention_mask = torch.zeros((len(items), width), dtype=torch.long)
        for row, item in enumerate(items):
            n = len(item["input_ids"])
            input_ids[row, width - n :] = torch.tensor(item["input_ids"])
            labels[row, width - n :] = torch.tensor(item["labels"])
            attention_mask[row, width - n :] = 1
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        target_span = max(len(x["input_ids"]) - x["prompt_len"] for x in items)
        return {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "labels": labels,
            "logits_to_keep": torch.tensor(target_span + 1),
        }


def training_pairs(dataset) -> list[CSFTPair]:
    """Pairs from the training part only (the prepared ``csft`` table)."""
    table = dataset.csft_pairs()
    return [
        CSFTPair(list(h), str(t)) for h, t in zip(table["history_titles"], table["target_title"], strict=True)
    ]


def validation_pairs(dataset, limit: int | None, seed: int) -> list[CSFTPair]:
    """(history → validation item) pairs, a seeded random sample of ``limit`` of them."""
    titles = dataset.titles
    valid = dataset.split("valid")
    pairs = [
        CSFTPair([titles[i] for i in history], titles[int(target)])
        for history, target in zip(valid["history"], valid["target"], strict=True)
        if len(history) > 0
    ]
    if limit is not None and len(pairs) > limit:
        pairs = random.Random(seed).sample(pairs, limit)
    return pairs
