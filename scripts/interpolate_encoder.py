"""Write an encoder whose weights lie between two trained stages: (1 - alpha) * start + alpha * end.

A probe, not a pipeline stage (docs/results.md, issue 13): does a point between the MNTP model and the
contrastive model it was trained into keep MNTP's downstream score and the contrastive stage's knn score?
``end`` is an encoder directory (``llm2rec contrastive`` output: a base transformer, no LM head); ``start``
may also hold an LM head (``llm2rec mntp`` output), whose ``model.`` prefix is dropped to match. Everything
but the weights is copied from ``end``, so ``llm2rec embed --encoder OUT`` reads it like ``end``.

    python scripts/interpolate_encoder.py --start RUN/mntp --end RUN/contrastive --alpha 0.5 --out OUT
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from safetensors.torch import load_file, save_file

from llm2rec.io import atomic_dir

WEIGHTS = "model.safetensors"


def base_weights(path: Path) -> dict:
    """The base transformer's tensors of a model directory, keyed as a base model keys them."""
    tensors = load_file(path / WEIGHTS)
    if any(k.startswith("model.") for k in tensors):  # a causal-LM checkpoint: drop its head and prefix
        tensors = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    return tensors


def interpolate(start: dict, end: dict, alpha: float) -> dict:
    if set(start) != set(end):
        missing = sorted(set(start) ^ set(end))[:5]
        raise SystemExit(f"error: the two models' tensors differ (e.g. {missing})")
    return {k: ((1 - alpha) * start[k].float() + alpha * end[k].float()).to(end[k].dtype) for k in end}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--start", type=Path, required=True, help="model directory at alpha = 0 (e.g. RUN/mntp)"
    )
    parser.add_argument(
        "--end", type=Path, required=True, help="encoder directory at alpha = 1 (RUN/contrastive)"
    )
    parser.add_argument("--alpha", type=float, required=True, help="0 = start, 1 = end")
    parser.add_argument("--out", type=Path, required=True, help="new encoder directory (must not exist)")
    args = parser.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"error: {args.out} exists; choose a new directory")
    merged = interpolate(base_weights(args.start), base_weights(args.end), args.alpha)
    with atomic_dir(args.out) as tmp:  # whole directory or nothing
        shutil.copytree(args.end, tmp, ignore=shutil.ignore_patterns(WEIGHTS), dirs_exist_ok=True)
        save_file(merged, tmp / WEIGHTS, metadata={"format": "pt"})
    print(f"wrote {args.out}: {len(merged)} tensors, alpha {args.alpha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
