"""Collaborative positives for the item contrastive stage: items that follow each other in users' sequences.

Besides two dropout views of one title (SimCSE), a pair (a, b) where b follows a within ``gap`` positions in
some user's *training part* is a positive: the official repository ships an unused loader for such pairs
(``training_item_pairs_gap24.jsonl``). Only training parts are read (``Dataset.train_sequences``), so a
user's valid or test target never forms a pair with that user's history.
"""

from __future__ import annotations

import random

import numpy as np

from llm2rec.data.text import unique_titles


def collaborative_pairs(train_sequences: list[np.ndarray], gap: int) -> list[tuple[int, int]]:
    """Distinct unordered item pairs ``(a, b)``, a < b, at most ``gap`` positions apart in a training part.

    An item never pairs with itself (a repeat purchase says nothing about two items' likeness). Sorted, so
    the result does not depend on the order of users."""
    if gap < 1:
        raise ValueError(f"gap must be >= 1, got {gap}")
    found: set[tuple[int, int]] = set()
    for seq in train_sequences:
        items = [int(i) for i in seq]
        for j, b in enumerate(items):
            for a in items[max(0, j - gap) : j]:
                if a != b:
                    found.add((min(a, b), max(a, b)))
    return sorted(found)


def pair_examples(
    titles: list[str], pairs: list[tuple[int, int]], count: int, seed: int
) -> list[tuple[int, str, int, str]]:
    """``count`` of ``pairs`` (item ids into ``titles``), drawn without replacement (all when fewer), as
    contrastive examples ``(query text id, query, key text id, key)``. Text ids number the distinct
    titles, as the dropout-view examples do, so identical titles are never each other's negatives; pairs
    of two items with the same title are dropped (they are a dropout view already)."""
    text_id = {title: i for i, title in enumerate(unique_titles(titles))}
    clean = [t.strip() for t in titles]
    usable = [(a, b) for a, b in pairs if clean[a] != clean[b] and clean[a] and clean[b]]
    chosen = random.Random(seed).sample(usable, min(count, len(usable)))
    return [(text_id[clean[a]], clean[a], text_id[clean[b]], clean[b]) for a, b in chosen]
