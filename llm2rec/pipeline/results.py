"""A run's results: one entry per encoder × recommender, written to ``RUN/results.json``."""

from __future__ import annotations

import json

from llm2rec.embed.registry import encoder_spec
from llm2rec.io import atomic_write_json


def collect_results(pipe) -> dict:
    """Metrics as in the seqrec contract, plus the dataset's counts and each stage's wall time."""
    entries = []
    for stage in pipe.stages.values():
        if stage.kind != "seqrec":
            continue
        res = json.loads((stage.output / "results.json").read_text(encoding="utf-8"))
        row = stage.extra.get("row", stage.extra["encoder"])
        description = encoder_spec(stage.extra["encoder"]).description
        if row != stage.extra["encoder"]:
            description += ", plus trainable ID embeddings (text+ID)"
        entries.append(
            {
                "encoder": row,
                "recommender": stage.extra["model"],
                "description": description,
                "metrics": res["metrics"],
            }
        )
    state = pipe.load_state()
    manifest = json.loads((pipe.layout.dataset / "manifest.json").read_text(encoding="utf-8"))
    results = {
        "dataset": {"source": manifest["source"]["format"], **manifest["counts"]},
        "model": pipe.cfg["model"],
        "preset": pipe.cfg["preset"],
        "seeds": pipe.cfg["seqrec"]["seeds"],
        "entries": entries,
        "stage_wall_seconds": {k: v.get("wall_seconds") for k, v in state.items()},
    }
    atomic_write_json(pipe.layout.results, results)
    return results
