"""Is bf16 autocast worth it on this CPU? Matmul throughput and one SmolLM2 training step, fp32 against bf16.

    python benchmarks/cpu_bf16.py [--threads 2] [--rows 128] [--tokens 40]

`mixed_precision: auto` (every LLM stage's default) turns bf16 autocast on where the CPU multiplies bf16 in
hardware (Intel AMX or AVX512-BF16, `llm2rec.train.setup.cpu_has_native_bf16`); this measures what that buys:
a 2048² matmul in each dtype, and forward + backward + AdamW of the built-in SmolLM2-135M on a fixed
(rows × tokens) batch (the base transformer, mean-pooled, as the contrastive stage runs it), median of 3
steps after one warm-up. JSON in benchmarks/results/cpu_bf16.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def matmul_gflops(dtype: torch.dtype, size: int = 2048, repeats: int = 20) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def step_seconds(model, ids: torch.Tensor, bf16: bool, steps: int = 3) -> float:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    times = []
    for i in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            hidden = model(input_ids=ids).last_hidden_state
            loss = hidden.float().mean(dim=1).pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if i:  # the first step is a warm-up
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--tokens", type=int, default=40)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "cpu_bf16.json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from transformers import AutoModel

    from llm2rec.io import atomic_write_json
    from llm2rec.llm.backbone import resolve_model
    from llm2rec.train.setup import cpu_has_native_bf16, resolve_precision

    model = AutoModel.from_pretrained(resolve_model("smollm2-135m"), dtype=torch.float32).train()
    ids = torch.randint(0, model.config.vocab_size, (args.rows, args.tokens))
    result = {
        "settings": vars(args) | {"out": args.out.name},  # the file's name only: no machine path
        "native_bf16": cpu_has_native_bf16(),
        "auto_resolves_to": resolve_precision("auto"),
        "matmul_gflops": {"fp32": matmul_gflops(torch.float32), "bf16": matmul_gflops(torch.bfloat16)},
        "smollm2_step_seconds": {
            "fp32": step_seconds(model, ids, bf16=False),
            "bf16_autocast": step_seconds(model, ids, bf16=True),
        },
        "machine": {"python": platform.python_version(), "torch": torch.__version__, "cpus": os.cpu_count()},
    }
    steps = result["smollm2_step_seconds"]
    result["speedup"] = {
        "matmul": result["matmul_gflops"]["bf16"] / result["matmul_gflops"]["fp32"],
        "training_step": steps["fp32"] / steps["bf16_autocast"],
    }
    print(json.dumps(result, indent=2))
    atomic_write_json(args.out, result)


if __name__ == "__main__":
    main()
