"""The runner hands each finished data, training or embedding stage's memory back before the next stage."""

from __future__ import annotations

import gc
import json
import weakref

from llm2rec.config import load_config
from llm2rec.pipeline import run_pipeline, runner


class _Cycle:
    def __init__(self):
        self.me = self  # kept alive by its own reference until a collection


def test_release_memory_frees_what_only_a_reference_cycle_holds():
    gc.disable()  # no automatic collection may do the function's work
    try:
        ref = weakref.ref(_Cycle())
        assert ref() is not None
        runner.release_memory()
        assert ref() is None
    finally:
        gc.enable()


def test_every_stage_but_the_recommenders_releases_memory_when_it_ends(tmp_path, monkeypatch):
    from llm2rec.llm.backbone import save_pretrained_atomic
    from llm2rec.llm.tiny import make_tiny_model, make_tiny_tokenizer

    tok = make_tiny_tokenizer()
    save_pretrained_atomic(make_tiny_model("llama", tok), tok, tmp_path / "model")
    calls = []
    monkeypatch.setattr(runner, "release_memory", lambda: calls.append(True))
    cfg = load_config(None, [
        f"model={tmp_path / 'model'}",
        "dataset={format: builtin, num_users: 100, num_items: 100}",
        "encoders=[id, csft]",
        "csft={max_steps: 2, eval_every: 2, save_every: 2, batch_size: 4, micro_batch: 4, warmup_steps: 0,"
        " generation_samples: 0, eval_samples: 8, progress: false}",
        "embed.batch_size=32",
        "seqrec={models: [sasrec], seeds: [1], options: {epochs: 1, hidden: 16, ffn: 32}}",
    ])  # fmt: skip
    run_pipeline(cfg, tmp_path / "run")
    stages = json.loads((tmp_path / "run" / "pipeline.json").read_text())
    assert sorted(stages) == ["csft", "dataset", "embed:csft", "seqrec:csft:sasrec", "seqrec:id:sasrec"]
    assert len(calls) == 3  # dataset, csft, embed:csft; not the two recommenders
