from __future__ import annotations

import pytest
import torch

from llm2rec.llm.pooling import last_pool, mean_pool, pool


@pytest.fixture
def batch():
    torch.manual_seed(0)
    hidden = torch.randn(3, 5, 4)
    mask = torch.tensor(
        [
            [0, 0, 1, 1, 1],  # left padded
            [1, 1, 0, 0, 0],  # right padded
            [1, 1, 1, 1, 1],
        ]
    )
    return hidden, mask


def test_mean_pool_matches_per_row_mean(batch):
    hidden, mask = batch
    out = mean_pool(hidden, mask)
    assert torch.allclose(out[0], hidden[0, 2:].mean(0))
    assert torch.allclose(out[1], hidden[1, :2].mean(0))
    assert torch.allclose(out[2], hidden[2].mean(0))


def test_mean_pool_ignores_padding_values(batch):
    hidden, mask = batch
    noisy = hidden.clone()
    noisy[mask == 0] = 1e6
    assert torch.allclose(mean_pool(noisy, mask), mean_pool(hidden, mask))


def test_mean_pool_empty_mask_gives_zeros():
    out = mean_pool(torch.randn(1, 3, 2), torch.zeros(1, 3))
    assert torch.equal(out, torch.zeros(1, 2))


def test_last_pool_left_and_right_padding(batch):
    hidden, mask = batch
    out = last_pool(hidden, mask)
    assert torch.equal(out[0], hidden[0, 4])
    assert torch.equal(out[1], hidden[1, 1])
    assert torch.equal(out[2], hidden[2, 4])


def test_pool_is_float32_and_rejects_unknown(batch):
    hidden, mask = batch
    assert pool(hidden.to(torch.bfloat16), mask, "mean").dtype == torch.float32
    with pytest.raises(ValueError, match="unknown pooling"):
        pool(hidden, mask, "cls")
