"""Metrics per target group and the repeat-the-last-item baseline, on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from llm2rec.seqrec.data import Examples
from llm2rec.seqrec.groups import (
    group_metrics,
    popularity_group_of_items,
    repeat_last_ranks,
    repeat_targets,
    target_groups,
)


def _examples(histories, targets, seen):
    width = max(len(h) for h in histories)
    padded = torch.tensor([h + [0] * (width - len(h)) for h in histories])
    indptr = np.concatenate([[0], np.cumsum([len(s) for s in seen])]).astype(np.int64)
    items = np.concatenate([np.asarray(s, dtype=np.int64) for s in seen])
    return Examples(padded, torch.tensor([len(h) for h in histories]), torch.tensor(targets),
                    np.arange(len(targets)), (indptr, items))  # fmt: skip


def test_popularity_thirds_by_share_of_training_interactions():
    # 12 interactions: item 1 alone is the first third (head); item 2 starts at 6/12 (torso);
    # items 3 and 4 start past 2/3 (tail); item 5 was never trained on (tail).
    counts = np.array([0, 6, 3, 2, 1, 0])
    assert popularity_group_of_items(counts).tolist() == [2, 0, 1, 2, 2, 2]


def test_group_metrics_by_hand():
    counts = np.array([0, 6, 3, 2, 1, 0])
    ex = _examples([[2, 1], [3], [1, 4]], targets=[1, 2, 4], seen=[[2, 1], [3], [1, 4]])
    assert repeat_targets(ex).tolist() == [True, False, True]
    groups = target_groups(counts, ex, cold_items=np.array([4]))
    assert {k: v.tolist() for k, v in groups.items()} == {
        "head": [True, False, False], "torso": [False, True, False], "tail": [False, False, True],
        "repeat": [True, False, True], "new": [False, True, False], "warm": [True, True, False],
        "cold": [False, False, True],
    }  # fmt: skip
    # Ranks 1, 3 and 12 (no ties): R@10 per group 1, 1, 0; NDCG@10 1, 1/log2(4) = 0.5, 0.
    ranks = torch.tensor([[0, 0], [2, 0], [11, 0]])
    out = group_metrics(ranks, groups, (10,))
    assert out["head"]["rows"] == 1 and out["head"]["recall@10"] == 1.0
    assert out["torso"]["ndcg@10"] == pytest.approx(0.5)
    assert out["repeat"]["recall@10"] == pytest.approx(0.5) and out["cold"]["recall@10"] == 0.0
    assert out["new"]["rows"] == 1 and out["warm"]["ndcg@10"] == pytest.approx(0.75)


def test_a_group_without_rows_has_no_metrics():
    ex = _examples([[1]], targets=[2], seen=[[1]])
    out = group_metrics(torch.tensor([[0, 0]]), target_groups(np.array([0, 1, 1]), ex), (10,))
    assert out["repeat"] == {"rows": 0}


def test_repeat_last_item_ranks_by_hand():
    # 5 items. Row 0 repeats its last item (rank 1). Row 1's target 4 is not its last item 3: item 3
    # scores 1 and the other three items tie with the target at 0.
    ex = _examples([[1, 2], [1, 3]], targets=[2, 4], seen=[[1, 2], [1, 3]])
    assert repeat_last_ranks(ex, 5, exclude_history=False).tolist() == [[0, 0], [1, 3]]
    # History excluded: items 1 and 3 leave the ranking; the target ties with items 2 and 5.
    assert repeat_last_ranks(ex, 5, exclude_history=True).tolist() == [[0, 0], [0, 2]]
