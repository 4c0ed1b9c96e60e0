"""Collaborative positives: pairs come from training parts only, and reach the contrastive loss right."""

from __future__ import annotations

import numpy as np
import torch

from llm2rec.train.contrastive import TitlePairCollator, contrastive_loss, training_examples
from llm2rec.train.pairs import collaborative_pairs, pair_examples
from tests.seqrec.conftest import write_loo_dataset


def test_pairs_are_items_within_the_gap_each_once():
    seqs = [np.array([1, 2, 3, 1]), np.array([3, 2])]
    assert collaborative_pairs(seqs, gap=1) == [(1, 2), (1, 3), (2, 3)]
    assert collaborative_pairs([np.array([5, 5, 6])], gap=2) == [(5, 6)]  # never an item with itself


def test_a_users_valid_and_test_targets_never_pair_with_that_users_history(tmp_path):
    # User 0 walks 1 2 3 4 5 6: 5 is its valid target, 6 its test target. Nobody else has 5 or 6.
    sequences = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10], [9, 10, 11, 12]]
    dataset = write_loo_dataset(tmp_path / "ds", sequences, num_items=12, max_history=5)
    pairs = collaborative_pairs(dataset.train_sequences(), gap=10)
    assert not any({5, 6} & set(p) for p in pairs)
    assert not any({11, 12} & set(p) for p in pairs)  # user 2's held-out items
    assert (1, 4) in pairs and (7, 8) in pairs and (9, 10) in pairs


def test_pair_examples_use_the_view_examples_text_ids(tmp_path):
    titles = ["", "Gloves", "Goggles", "Gloves", "Caliper"]  # items 1 and 3 share a title
    chosen = pair_examples(titles, [(1, 2), (1, 3), (2, 4)], count=10, seed=0)
    assert sorted(chosen) == [(0, "Gloves", 1, "Goggles"), (1, "Goggles", 2, "Caliper")]  # (1, 3): same text


def test_training_examples_add_pairs_only_when_asked(tmp_path):
    from llm2rec.train.contrastive import build_config

    dataset = write_loo_dataset(tmp_path / "ds", [[1, 2, 3, 4, 5], [2, 3, 4, 5]], num_items=5)
    plain, record = training_examples(dataset, build_config("cpu"))
    assert all(e[0] == e[2] for e in plain) and len(plain) == record["titles"] == 5
    mixed, record = training_examples(dataset, build_config("cpu", pair_gap=2, pairs_per_title=0.4))
    assert len(mixed) == 5 + 2 and record["collaborative_pairs_used"] == 2
    assert all(e[0] != e[2] for e in mixed[5:])


def test_a_pairs_duplicates_are_not_its_negatives():
    """Key j is the positive of query i; another row whose key is the same text must not be a negative."""
    torch.manual_seed(0)
    a, b = torch.randn(3, 8), torch.randn(3, 8)
    ids, keys = torch.tensor([0, 1, 2]), torch.tensor([5, 5, 7])
    loss, _ = contrastive_loss(a, b, ids, 0.2, key_ids=keys)
    q = torch.nn.functional.normalize(a, dim=-1)
    k = torch.nn.functional.normalize(b, dim=-1)
    scores = q @ k.T / 0.2
    scores[0, 1] = scores[1, 0] = float("-inf")  # rows 0 and 1 have the same positive text (5)
    expected = torch.nn.functional.cross_entropy(scores, torch.arange(3))
    assert torch.allclose(loss, expected)


def test_the_collator_tokenizes_queries_then_keys():
    from llm2rec.llm.tiny import make_tiny_tokenizer

    batch = TitlePairCollator(make_tiny_tokenizer())(
        [(3, "Nitrile Gloves", 8, "Safety Goggles"), (9, "Caliper")]
    )
    assert batch["text_ids"].tolist() == [3, 9] and batch["key_ids"].tolist() == [8, 9]
    assert batch["input_ids"].shape[0] == 4
