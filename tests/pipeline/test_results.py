"""RUN/results.json records the library versions of the process that collected it (issue 36)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from llm2rec.pipeline.layout import RunLayout
from llm2rec.pipeline.results import collect_results
from llm2rec.versions import library_versions


def test_results_json_records_the_library_versions(tmp_path):
    layout = RunLayout(tmp_path / "run")
    layout.dataset.mkdir(parents=True)
    manifest = {"source": {"format": "builtin"}, "counts": {"users": 3, "items": 5, "interactions": 9}}
    (layout.dataset / "manifest.json").write_text(json.dumps(manifest))
    seqrec = tmp_path / "run" / "seqrec" / "id-sasrec"
    seqrec.mkdir(parents=True)
    (seqrec / "results.json").write_text(json.dumps({"metrics": {"recall@10": {"mean": 0.5, "std": 0.0}}}))
    stage = SimpleNamespace(kind="seqrec", output=seqrec, extra={"encoder": "id", "model": "sasrec"})
    pipe = SimpleNamespace(
        stages={"seqrec:id-sasrec": stage},
        layout=layout,
        cfg={"model": "smollm2-135m", "preset": "cpu", "seqrec": {"seeds": [1]}},
        load_state=lambda: {"seqrec:id-sasrec": {"wall_seconds": 1.5}},
    )
    results = collect_results(pipe)
    written = json.loads(layout.results.read_text(encoding="utf-8"))
    assert written["versions"] == results["versions"] == library_versions()
    assert {"llm2rec", "torch", "transformers", "accelerate", "peft", "sentence-transformers"} <= set(
        written["versions"]
    )
    assert written["entries"][0]["encoder"] == "id"
