"""Pipeline planning, skipping, resuming and forcing, with stage actions replaced by recorders."""

from __future__ import annotations

import json

import pytest

from llm2rec.config import load_config
from llm2rec.outdir import write_marker
from llm2rec.pipeline import Pipeline, run_pipeline
from llm2rec.pipeline import actions as pl


@pytest.fixture
def recorder(monkeypatch):
    calls = []

    def fake(pipe, stage, resume):
        calls.append((stage.name, resume))
        if stage.output.suffix == ".npy":
            stage.output.parent.mkdir(parents=True, exist_ok=True)
            stage.output.write_bytes(b"x")
            stage.output.with_suffix(".json").write_text('{"written_as": "item-vectors"}')
        else:
            stage.output.mkdir(parents=True, exist_ok=True)
            if stage.name.startswith("seqrec:"):
                metrics = {"recall@10": {"mean": 0.1, "std": 0.0, "per_seed": [0.1]}}
                (stage.output / "results.json").write_text(json.dumps({"metrics": metrics}))
            if stage.name == "dataset":
                counts = {
                    "users": 1,
                    "items": 1,
                    "interactions": 1,
                    "mean_sequence_length": 1.0,
                    "density": 1.0,
                }
                (stage.output / "manifest.json").write_text(
                    json.dumps({"source": {"format": "x"}, "counts": counts})
                )
            write_marker(stage.output, "fake")  # as every real stage does: the runner may remove it

    for name in ("run_prepare", "run_training", "run_embed", "run_seqrec"):
        monkeypatch.setattr(pl, name, fake)
    monkeypatch.setattr("llm2rec.pipeline.report.write_report", lambda run_dir: None)
    return calls


def _plan(cfg, tmp_path, force=None):
    return Pipeline(cfg, tmp_path / "run", force)


def test_plan_includes_only_needed_training_stages(tmp_path, recorder):
    cfg = load_config(None, ["encoders=[id, csft]"])
    names = list(_plan(cfg, tmp_path).stages)
    assert names == ["dataset", "seqrec:id:sasrec", "csft", "embed:csft", "seqrec:csft:sasrec"]
    cfg = load_config(None, ["encoders=[minilm, raw-mean]"])
    assert "csft" not in _plan(cfg, tmp_path).stages


def test_the_pairs_row_branches_from_mntp_beside_the_faithful_stage(tmp_path, recorder):
    cfg = load_config(None, ["encoders=[llm2rec, llm2rec+pairs]", "contrastive.lr=1e-4",
                             "contrastive_pairs.pairs_per_title=0.5"])  # fmt: skip
    stages = _plan(cfg, tmp_path).stages
    assert stages["contrastive"].deps == stages["contrastive_pairs"].deps == ["dataset", "mntp"]
    faithful, pairs = stages["contrastive"].extra["config"], stages["contrastive_pairs"].extra["config"]
    assert faithful.pair_gap == 0 and pairs.pair_gap == 3 and pairs.pairs_per_title == 0.5
    assert faithful.lr == pairs.lr == 1e-4  # the contrastive section is the variant's too
    assert stages["embed:llm2rec+pairs"].deps == ["dataset", "contrastive_pairs"]
    assert stages["contrastive_pairs"].output == tmp_path / "run" / "contrastive_pairs"


def test_text_plus_id_rows_are_their_own_stages(tmp_path, recorder):
    cfg = load_config(
        None, ["encoders=[id, minilm]", "seqrec.models=[sasrec, knn]", "seqrec.with_id=[minilm]"]
    )
    stages = _plan(cfg, tmp_path).stages
    row = stages["seqrec:minilm+id:sasrec"]
    assert row.settings["options"]["item_repr"] == "text+id" and row.deps == ["dataset", "embed:minilm"]
    assert "item_repr" not in stages["seqrec:minilm:sasrec"].settings["options"]
    assert "seqrec:minilm+id:knn" not in stages  # knn trains nothing: no ID table to add
    assert row.output == tmp_path / "run" / "seqrec" / "minilm+id-sasrec"
    from llm2rec.errors import ConfigError

    with pytest.raises(ConfigError, match="with_id"):
        load_config(None, ["encoders=[id, minilm]", "seqrec.with_id=[llm2rec]"])


def test_baselines_pair_with_the_encoders_they_use(tmp_path, recorder):
    cfg = load_config(None, ["encoders=[id, minilm]", "seqrec.models=[sasrec, knn, pop]"])
    names = [n for n in _plan(cfg, tmp_path).stages if n.startswith("seqrec:")]
    assert names == ["seqrec:id:sasrec", "seqrec:id:pop", "seqrec:minilm:sasrec", "seqrec:minilm:knn"]


def test_rerun_skips_and_changes_invalidate_downstream(tmp_path, recorder):
    cfg = load_config(None, ["encoders=[id, csft-mntp]"])
    _plan(cfg, tmp_path).run()
    first = [name for name, _ in recorder]
    assert first[:4] == ["dataset", "seqrec:id:sasrec", "csft", "mntp"]
    recorder.clear()
    _plan(cfg, tmp_path).run()
    assert recorder == []  # everything up to date
    cfg2 = load_config(None, ["encoders=[id, csft-mntp]", "mntp.lr=0.1"])
    _plan(cfg2, tmp_path).run()
    assert [n for n, _ in recorder] == ["mntp", "embed:csft-mntp", "seqrec:csft-mntp:sasrec"]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert [(e["encoder"], e["recommender"]) for e in results["entries"]] == [
        ("id", "sasrec"),
        ("csft-mntp", "sasrec"),
    ]


def test_fingerprints_follow_resolved_preset_values_not_names(tmp_path, recorder, monkeypatch):
    from llm2rec.train import mntp

    cfg = load_config(None, ["encoders=[csft-mntp]"])
    before = {n: s.fingerprint for n, s in _plan(cfg, tmp_path).stages.items()}
    # cosmetic settings (progress bars, logging) leave finished stages valid
    quiet = load_config(None, ["encoders=[csft-mntp]", "mntp.progress=false", "mntp.log_every=1"])
    assert {n: s.fingerprint for n, s in _plan(quiet, tmp_path).stages.items()} == before
    # editing the preset itself invalidates the stage and what it feeds, even with the same config file
    edited = {**mntp.PRESETS, cfg["preset"]: {**mntp.PRESETS[cfg["preset"]], "mask_probability": 0.3}}
    monkeypatch.setattr(mntp, "PRESETS", edited)
    after = {n: s.fingerprint for n, s in _plan(cfg, tmp_path).stages.items()}
    changed = sorted(n for n in before if before[n] != after[n])
    assert changed == ["embed:csft-mntp", "mntp", "seqrec:csft-mntp:sasrec"]


@pytest.mark.parametrize("encoders", [["csft"], ["id"]])
def test_unknown_stage_setting_fails_before_anything_runs(tmp_path, recorder, encoders):
    """Planned or not (``[id]`` trains no CSFT), a stage's section is checked, by load_config and again
    by planning (a config dict built without load_config)."""
    from llm2rec.errors import ConfigError

    with pytest.raises(ConfigError, match=r"csft\.learning_rate"):
        load_config(None, [f"encoders={encoders}", "csft.learning_rate=0.1"])
    cfg = load_config(None, [f"encoders={encoders}"])
    cfg["csft"] = {"learning_rate": 0.1}
    with pytest.raises(ConfigError, match=r"csft\.learning_rate"):
        _plan(cfg, tmp_path)
    assert recorder == []


def test_force_reruns_stage_and_dependents(tmp_path, recorder):
    cfg = load_config(None, ["encoders=[id, csft]"])
    _plan(cfg, tmp_path).run()
    recorder.clear()
    _plan(cfg, tmp_path, force=["csft"]).run()
    assert [n for n, _ in recorder] == ["csft", "embed:csft", "seqrec:csft:sasrec"]


def test_interrupted_stage_resumes(tmp_path, recorder, monkeypatch):
    cfg = load_config(None, ["encoders=[csft]"])
    original = pl.run_training

    def crash(pipe, stage, resume):
        raise KeyboardInterrupt

    monkeypatch.setattr(pl, "run_training", crash)
    with pytest.raises(KeyboardInterrupt):
        _plan(cfg, tmp_path).run()
    monkeypatch.setattr(pl, "run_training", original)
    recorder.clear()
    _plan(cfg, tmp_path).run()
    assert recorder[0] == ("csft", True)  # resumed, not restarted


def test_unknown_force_is_refused(tmp_path):
    from llm2rec.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown stage"):
        _plan(load_config(None, ["encoders=[id]"]), tmp_path, force=["nope"])


@pytest.mark.slow
def test_parallel_seqrec_workers_match_sequential(tmp_path):
    overrides = ["dataset.num_users=150", "dataset.num_items=100", "encoders=[id]", "seqrec.models=[sasrec, gru4rec]",
                 "seqrec.seeds=[3]", "seqrec.options={epochs: 2}"]  # fmt: skip
    seq = run_pipeline(load_config(None, overrides), tmp_path / "seq")
    par = run_pipeline(load_config(None, [*overrides, "seqrec.workers=2"]), tmp_path / "par")
    assert [e["metrics"]["recall@10"]["mean"] for e in seq["entries"]] == pytest.approx(
        [e["metrics"]["recall@10"]["mean"] for e in par["entries"]]
    )
    state = json.loads((tmp_path / "par" / "pipeline.json").read_text())
    assert all(state[f"seqrec:id:{m}"]["status"] == "done" for m in ("sasrec", "gru4rec"))


def test_a_text_plus_id_row_trains_with_ids_and_is_reported_as_its_own_row(tmp_path):
    overrides = ["dataset.num_users=150", "dataset.num_items=100", "encoders=[id, minilm]", "seqrec.models=[sasrec]",
                 "seqrec.seeds=[3]", "seqrec.options={epochs: 1, hidden: 16, ffn: 32}", "seqrec.with_id=[minilm]"]  # fmt: skip
    results = run_pipeline(load_config(None, overrides), tmp_path / "run")
    assert [e["encoder"] for e in results["entries"]] == ["id", "minilm", "minilm+id"]
    assert "text+ID" in results["entries"][2]["description"]
    for row, repr_ in (("minilm", "text"), ("minilm+id", "text+id")):
        config = json.loads((tmp_path / "run" / "seqrec" / f"{row}-sasrec" / "config.json").read_text())
        assert config["config"]["item_repr"] == repr_
