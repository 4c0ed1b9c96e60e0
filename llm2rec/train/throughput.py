"""Throughput figures for the progress bar and metrics.jsonl: tokens per second and an MFU estimate."""

from __future__ import annotations

import time
from collections.abc import Mapping

import torch

from llm2rec.train.config import LoopConfig

_GPU_PEAK_BF16_TFLOPS = {  # dense bf16 tensor-core peaks, for the MFU estimate only
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "A40": 149.7,
    "L40": 181.0,
    "A10": 125.0,
    "L4": 121.0,
    "4090": 165.2,
    "3090": 71.0,
    "A6000": 154.8,
    "V100": 125.0,
    "T4": 65.0,
}


def peak_flops(device: torch.device, config: LoopConfig) -> float | None:
    if config.peak_tflops:
        return config.peak_tflops * 1e12
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        return next((v * 1e12 for k, v in _GPU_PEAK_BF16_TFLOPS.items() if k in name), None)
    # A CPU's peak is not known from its type (the guessed AVX2 figure once showed an MFU of 98.8%): no MFU
    # there unless peak_tflops is given (a figure the user measured); tokens/s only.
    return None


def flops_per_token(model) -> float:
    """6·N: forward 2N plus backward 4N per trained token (nanoGPT / PaLM convention, attention ignored)."""
    return 6.0 * sum(p.numel() for p in model.parameters())


def count_tokens(batch: dict) -> int:
    """Non-padding tokens of a batch (via attention_mask when present)."""
    if isinstance(batch, Mapping):
        if "attention_mask" in batch:
            return int(batch["attention_mask"].sum())
        if "input_ids" in batch:
            return int(batch["input_ids"].numel())
    return 0


class Window:
    """Running sums between two log lines."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.steps, self.loss, self.tokens, self.metrics = 0, 0.0, 0, {}

    def add(self, loss: float, metrics: dict, tokens: int) -> None:
        self.steps += 1
        self.loss += loss
        self.tokens += tokens
        for key, value in metrics.items():
            self.metrics[key] = self.metrics.get(key, 0.0) + value
