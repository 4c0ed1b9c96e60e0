"""Training curves as PNG: loss per epoch and the validation metric at each evaluation."""

from __future__ import annotations

import io
from pathlib import Path

from llm2rec.io import atomic_write_bytes


def plot_curve(curve: list[dict], path: str | Path, valid_metric: str, title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_valid) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot([p["epoch"] for p in curve], [p["loss"] for p in curve])
    ax_loss.set(xlabel="epoch", ylabel="training loss (CE)")
    key = f"valid_{valid_metric}"
    evaluated = [p for p in curve if key in p]
    ax_valid.plot([p["epoch"] for p in evaluated], [p[key] for p in evaluated], marker="o", markersize=3)
    ax_valid.set(xlabel="epoch", ylabel=f"valid {valid_metric}")
    if evaluated:
        best = max(evaluated, key=lambda p: p[key])
        ax_valid.axvline(
            best["epoch"], color="grey", linestyle="--", linewidth=1, label=f"best: {best['epoch']}"
        )
        ax_valid.legend()
    fig.suptitle(title)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
