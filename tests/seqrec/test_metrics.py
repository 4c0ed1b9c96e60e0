import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llm2rec.seqrec.metrics import full_ranking_ranks, metric_keys, metrics_from_ranks, ranks_from_scores


def test_ranks_by_hand_count_higher_and_tied_items():
    scores = torch.tensor(
        [
            [0.9, 0.5, 0.1, 0.7],  # target col 1: 0.9 and 0.7 beat it → rank 3
            [0.2, 0.2, 0.2, 0.2],  # all tied → rank 1..4
            [0.3, 0.8, 0.8, 0.1],  # target col 2 ties col 1 → rank 1..2
            [0.1, 0.2, 0.3, 0.4],  # target col 0 is the worst → rank 4
        ]
    )
    ranks = ranks_from_scores(scores, torch.tensor([1, 0, 2, 0]))
    assert ranks.tolist() == [[2, 0], [0, 3], [0, 1], [3, 0]]  # (higher, tied)


def test_ties_are_broken_uniformly_in_expectation():
    # A tie of the target with one other item at the top: rank 1 or 2, each with probability 1/2.
    m = metrics_from_ranks(torch.tensor([[0, 1]]), ks=(1, 2))
    assert m["recall@1"] == pytest.approx(0.5) and m["recall@2"] == pytest.approx(1.0)
    assert m["ndcg@1"] == pytest.approx(0.5) and m["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 2)
    assert m["mrr@2"] == pytest.approx((1 + 0.5) / 2)
    # behind 3 higher items, tied with 4 others: rank uniform on 4..8
    m = metrics_from_ranks(torch.tensor([[3, 4]]), ks=(5,))
    assert m["recall@5"] == pytest.approx(2 / 5)
    assert m["ndcg@5"] == pytest.approx((1 / math.log2(5) + 1 / math.log2(6)) / 5)


@pytest.mark.parametrize("num_items", [1, 7, 50])
def test_every_score_tied_gives_chance_level(num_items):
    users, items = torch.zeros(30, 4), torch.zeros(num_items, 4)  # a collapsed encoder: all vectors equal
    targets = torch.randint(1, num_items + 1, (30,), generator=torch.Generator().manual_seed(0))
    m = metrics_from_ranks(full_ranking_ranks(users, items, targets), ks=(1, 5, 10))
    for k in (1, 5, 10):
        assert m[f"recall@{k}"] == pytest.approx(min(k, num_items) / num_items)
    assert m["recall@1"] < 1.0 or num_items == 1


def test_metrics_by_hand():
    ranks = torch.tensor([1, 2, 6, 30])
    m = metrics_from_ranks(ranks, ks=(1, 5, 10))
    assert m["recall@1"] == pytest.approx(0.25)
    assert m["recall@5"] == pytest.approx(0.5)
    assert m["recall@10"] == pytest.approx(0.75)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(7)) / 4)
    assert m["mrr@5"] == pytest.approx((1 + 0.5) / 4)
    assert m["mrr@10"] == pytest.approx((1 + 0.5 + 1 / 6) / 4)
    assert set(m) == set(metric_keys((1, 5, 10)))


def test_full_ranking_over_items_without_padding():
    # item_vecs row j is item j+1: user 0 prefers item 3, then 1, then 2.
    users = torch.tensor([[1.0], [-1.0]])
    items = torch.tensor([[2.0], [1.0], [3.0]])
    ranks = full_ranking_ranks(users, items, torch.tensor([1, 1]))
    assert ranks.tolist() == [[1, 0], [1, 0]]
    with pytest.raises(ValueError, match="item ids in 1..3"):
        full_ranking_ranks(users, items, torch.tensor([0, 1]))


def test_history_exclusion_removes_seen_items_but_never_the_target():
    users = torch.ones(2, 1)
    items = torch.tensor([[5.0], [4.0], [3.0], [2.0]])  # items 1..4, item 1 scores highest
    targets = torch.tensor([3, 2])
    # row 0 has seen items 1 and 2 (both above the target); row 1 has seen its own target (a repeat) and 1.
    exclude = (np.array([0, 2, 4]), np.array([1, 2, 2, 1]))
    assert full_ranking_ranks(users, items, targets).tolist() == [[2, 0], [1, 0]]
    assert full_ranking_ranks(users, items, targets, exclude).tolist() == [[0, 0], [0, 0]]
    # excluded items are never tied with the target, even when they score the same
    flat = torch.zeros(4, 1)
    assert full_ranking_ranks(users[:1], flat, targets[:1], exclude).tolist() == [[0, 1]]


@settings(max_examples=30, deadline=None)
@given(
    num_users=st.integers(1, 12),
    num_items=st.integers(1, 40),
    budget=st.integers(4, 2000),
    seed=st.integers(0, 10_000),
)
def test_chunked_ranks_match_a_per_user_loop(num_users, num_items, budget, seed):
    gen = torch.Generator().manual_seed(seed)
    # Small integer factors make exact ties common, which is where chunking mistakes would show.
    users = torch.randint(-2, 3, (num_users, 3), generator=gen).float()
    items = torch.randint(-2, 3, (num_items, 3), generator=gen).float()
    targets = torch.randint(1, num_items + 1, (num_users,), generator=gen)
    seen = [
        np.unique(np.random.default_rng(seed + u).integers(1, num_items + 1, 3)) for u in range(num_users)
    ]
    exclude = (np.concatenate([[0], np.cumsum([len(s) for s in seen])]), np.concatenate(seen))
    got = full_ranking_ranks(users, items, targets, exclude, memory_budget=budget)
    for u in range(num_users):
        scores = (items @ users[u]).tolist()
        t = int(targets[u])
        excluded = set(seen[u].tolist()) - {t}
        ranked = [j for j in range(1, num_items + 1) if j not in excluded and j != t]
        higher = sum(1 for j in ranked if scores[j - 1] > scores[t - 1])
        tied = sum(1 for j in ranked if scores[j - 1] == scores[t - 1])
        assert got[u].tolist() == [higher, tied]


def test_in_place_ranking_and_long_rows_summed_in_pieces(monkeypatch):
    import llm2rec.seqrec.metrics as metrics

    scores = torch.tensor([[0.5, 0.9, 0.1, 0.7, 0.9, 0.2, 0.6]])
    original = scores.clone()
    expected = ranks_from_scores(scores, torch.tensor([3]))
    assert expected.tolist() == [[2, 0]] and torch.equal(scores, original)  # not mutated by default
    monkeypatch.setattr(metrics, "EXACT_FLOAT_COUNT", 2)  # pretend rows are longer than float32 can count
    assert ranks_from_scores(scores, torch.tensor([3]), inplace=True).tolist() == [[2, 0]]
    assert not torch.equal(scores, original)


def test_a_diverged_model_gets_no_credit():
    scores = torch.tensor([[float("nan"), 0.5, 0.1], [0.2, float("nan"), 0.1], [float("inf"), 0.0, 0.0]])
    ranks = ranks_from_scores(scores, torch.tensor([0, 0, 0]))
    assert ranks.tolist() == [[2, 0], [0, 0], [2, 0]]  # NaN / inf targets last; NaN competitors lowest


def test_ranks_are_exact_under_bfloat16_autocast_and_for_half_inputs():
    """A training stage's knn probe ranks under the loop's bf16 autocast: the product and the counts must
    still be float32 (in bfloat16 the row sums over 1,000 items were off by several, giving negative
    'ties' and recalls outside [0, 1])."""
    gen = torch.Generator().manual_seed(0)
    users, items = torch.randn(64, 16, generator=gen), torch.randn(1000, 16, generator=gen)
    targets = torch.randint(1, 1001, (64,), generator=gen)
    exact = full_ranking_ranks(users, items, targets)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_autocast = full_ranking_ranks(users, items, targets)
    assert torch.equal(under_autocast, exact)
    half = full_ranking_ranks(users.bfloat16(), items.bfloat16(), targets)
    assert (half[:, 0] + half[:, 1] <= 999).all() and (half >= 0).all()
    metrics = metrics_from_ranks(half, (10,))
    assert 0.0 <= metrics["recall@10"] <= 1.0


def test_per_row_metrics_average_to_the_metrics_and_give_a_standard_error():
    from llm2rec.seqrec.metrics import per_row_metric, standard_error

    ranks = torch.tensor([[0, 0], [3, 0], [25, 0], [8, 3]])  # (higher, tied): the last row ties 4 ways
    per_row = per_row_metric(ranks, "recall", 10)
    assert per_row.tolist() == [1.0, 1.0, 0.0, 0.5]  # positions 9..12: two of four within 10
    assert metrics_from_ranks(ranks, (10,))["recall@10"] == pytest.approx(per_row.mean().item())
    assert standard_error(per_row) == pytest.approx(per_row.numpy().std(ddof=1) / 2)
    assert standard_error(per_row[:1]) == 0.0
