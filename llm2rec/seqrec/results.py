"""Aggregating per-seed metrics (mean ± std) and writing them as JSON, CSV and Markdown."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from llm2rec.io import atomic_write_json, atomic_write_text
from llm2rec.seqrec.config import STD_KINDS


def aggregate(per_seed: Sequence[dict[str, float]], std: str = "population") -> dict[str, dict]:
    """``{metric: {"mean", "std", "per_seed"}}``; ``std`` is the population (ddof 0, as the official code's
    ``np.std``) or sample (ddof 1) standard deviation; one run gives std 0."""
    if std not in STD_KINDS:
        raise ValueError(f"std must be one of {STD_KINDS}, not {std!r}")
    if not per_seed:
        raise ValueError("no runs to aggregate")
    out = {}
    for key in per_seed[0]:
        values = np.array([run[key] for run in per_seed], dtype=np.float64)
        ddof = 1 if std == "sample" and len(values) > 1 else 0
        out[key] = {
            "mean": float(values.mean()),
            "std": float(values.std(ddof=ddof)),
            "per_seed": values.tolist(),
        }
    return out


def format_mean_std(entry: dict, digits: int = 4) -> str:
    if len(entry["per_seed"]) == 1:
        return f"{entry['mean']:.{digits}f}"
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def markdown_table(rows: dict[str, dict[str, dict]], keys: Sequence[str], digits: int = 4) -> str:
    """A Markdown table with one row per labelled aggregate (``{label: aggregate(...)}``)."""
    lines = ["| run | " + " | ".join(_pretty(k) for k in keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for label, metrics in rows.items():
        cells = [format_mean_std(metrics[k], digits) if k in metrics else "–" for k in keys]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _pretty(key: str) -> str:
    name, k = key.split("@")
    return {"recall": "R", "ndcg": "N", "mrr": "MRR"}.get(name, name) + f"@{k}"


def metrics_csv(metrics: dict[str, dict], seeds: Sequence) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["metric", "mean", "std", *[f"seed_{s}" for s in seeds]])
    for key, entry in metrics.items():
        writer.writerow(
            [key, f"{entry['mean']:.6f}", f"{entry['std']:.6f}", *[f"{v:.6f}" for v in entry["per_seed"]]]
        )
    return buffer.getvalue()


def write_results(out_dir: str | Path, results: dict, label: str) -> None:
    """``results.json`` (the contract: ``results["metrics"][key] = {mean, std, per_seed}``), ``results.csv``
    and ``results.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    atomic_write_json(out_dir / "results.json", results)
    atomic_write_text(out_dir / "results.csv", metrics_csv(results["metrics"], results["seeds"]))
    keys = list(results["metrics"])
    if results["seeds"] == ["none"]:
        std_note = "deterministic, one run"
    else:
        std_note = f"mean ± {results['std']} std over seeds {', '.join(map(str, results['seeds']))}"
    text = f"# {label}\n\nTest split, {std_note}.\n\n" + markdown_table({label: results["metrics"]}, keys)
    atomic_write_text(out_dir / "results.md", text)
