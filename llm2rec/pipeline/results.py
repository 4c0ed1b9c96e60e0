"""A run's results: one entry per encoder × recommender (× evaluation dataset), in ``RUN/results.json``."""

from __future__ import annotations

import json
from pathlib import Path

from llm2rec.config import is_multi
from llm2rec.embed.registry import encoder_spec
from llm2rec.io import atomic_write_json
from llm2rec.versions import library_versions

SUMMARY_METRICS = ("recall@10", "ndcg@10")


def collect_results(pipe) -> dict:
    """Metrics as in the seqrec contract, plus each dataset's counts and each stage's wall time. A
    multi-dataset run adds ``datasets`` (counts and domain of each evaluation dataset) and ``summary``."""
    entries = []
    for stage in pipe.stages.values():
        if stage.kind != "seqrec":
            continue
        res = json.loads((stage.output / "results.json").read_text(encoding="utf-8"))
        row = stage.extra.get("row", stage.extra["encoder"])
        description = encoder_spec(stage.extra["encoder"]).description
        if row != stage.extra["encoder"]:
            description += ", plus trainable ID embeddings (text+ID)"
        entry = {"encoder": row, "recommender": stage.extra["model"], "description": description,
                 "metrics": res["metrics"]}  # fmt: skip
        if "group_metrics" in res:
            entry["group_metrics"] = res["group_metrics"]
        if stage.extra.get("dataset"):
            entry["dataset"] = stage.extra["dataset"]
        entries.append(entry)
    state = pipe.load_state()
    results = {
        "dataset": _dataset_record(pipe.layout.dataset),
        "model": pipe.cfg["model"],
        "preset": pipe.cfg["preset"],
        "seeds": pipe.cfg["seqrec"]["seeds"],
        "entries": entries,
        "stage_wall_seconds": {k: v.get("wall_seconds") for k, v in state.items()},
        "versions": library_versions(),  # of this process, which collected the results
    }
    if is_multi(pipe.cfg):
        mix = pipe.cfg["mix"]
        results["training_datasets"] = mix["train"]
        results["datasets"] = {
            name: {**_dataset_record(pipe.layout.source_dataset(name)), "domain": domain(name, mix["train"])}
            for name in mix["evaluate"]
        }
        results["summary"] = domain_summary(entries, results["datasets"])
    atomic_write_json(pipe.layout.results, results)
    return results


def _dataset_record(root: Path) -> dict:
    manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    return {"source": manifest["source"]["format"], **manifest["counts"]}


def domain(name: str, training: list[str]) -> str:
    """``in``: the LLM stages trained on this dataset (its training part); ``out``: they never saw it."""
    return "in" if name in training else "out"


def domain_summary(entries: list[dict], datasets: dict) -> dict:
    """Per domain (in / out), per encoder × recommender: the mean over that domain's datasets of each
    summary metric's seed mean, and how many datasets it averages (a row missing on one is not hidden)."""
    summary = {}
    for dom in ("in", "out"):
        names = [n for n, d in datasets.items() if d["domain"] == dom]
        rows = {}
        for e in (e for e in entries if e.get("dataset") in names):
            row = rows.setdefault((e["encoder"], e["recommender"]), {k: [] for k in SUMMARY_METRICS})
            for k in SUMMARY_METRICS:
                if k in e["metrics"]:
                    row[k].append(e["metrics"][k]["mean"])
        summary[dom] = [
            {"encoder": enc, "recommender": rec, "datasets": len(vals[SUMMARY_METRICS[0]]),
             **{k: sum(v) / len(v) for k, v in vals.items() if v}}
            for (enc, rec), vals in rows.items()
        ]  # fmt: skip
    return summary
