"""llm2rec: LLM2Rec (He et al., KDD 2025) as a library and a command.

The public API (loaded lazily: ``import llm2rec`` stays light, no torch or transformers)::

    from llm2rec import Encoder, load_config, run_pipeline
    vectors = Encoder.from_pretrained("runs/scientific/contrastive").encode(["Digital Caliper 6 inch"])
    results = run_pipeline(load_config("configs/cpu-small.yaml"), "runs/scientific")
    top = Recommender.load("runs/scientific", encoder="llm2rec").recommend(["Digital Caliper 6 inch"], k=10)

See docs/architecture.md for the layout of the package.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# name -> module that defines it
_API = {
    "Encoder": "llm2rec.embed.encoder",
    "embed_items": "llm2rec.embed.extract",
    "Dataset": "llm2rec.data.dataset",
    "prepare_from_spec": "llm2rec.data.prepare",
    "load_item_vectors": "llm2rec.data.vectors",
    "run_csft": "llm2rec.train.csft",
    "run_mntp": "llm2rec.train.mntp",
    "run_contrastive": "llm2rec.train.contrastive",
    "run_seqrec": "llm2rec.seqrec.run",
    "load_config": "llm2rec.config",
    "run_pipeline": "llm2rec.pipeline.runner",
    "write_report": "llm2rec.pipeline.report",
    "Recommender": "llm2rec.serve.recommender",
    "UserError": "llm2rec.errors",
    "ConfigError": "llm2rec.errors",
}

__all__ = [*_API, "__version__"]


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'llm2rec' has no attribute {name!r}")
