"""The small finished run every serve test reads: a tiny Llama as the CSFT backbone, an ID-only and a CSFT
row, one SASRec seed each (built once per session, a few seconds)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    from llm2rec.config import load_config
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer
    from llm2rec.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("serve")
    tok = make_tiny_tokenizer()
    save_pretrained_atomic(make_tiny_model("llama", tok), tok, root / "model")
    overrides = [
        f"model={root / 'model'}",
        "dataset={format: builtin, num_users: 120, num_items: 100}",
        "encoders=[id, csft]",
        "csft={max_steps: 2, eval_every: 2, save_every: 2, batch_size: 4, micro_batch: 4, warmup_steps: 0,"
        " generation_samples: 0, eval_samples: 8, progress: false}",
        "seqrec={models: [sasrec], seeds: [1], options: {epochs: 2, hidden: 16, ffn: 32}}",
    ]
    run_pipeline(load_config(None, overrides), root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def client(tiny_run):
    from fastapi.testclient import TestClient

    from llm2rec.serve.app import RunService, create_app

    return TestClient(create_app(RunService(tiny_run)))
