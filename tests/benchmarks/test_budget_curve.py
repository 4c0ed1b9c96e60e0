"""benchmarks/budget_curve.py: each scale's settings are the cpu presets with steps and horizon scaled
together, valid run-config overrides, and the figure's points come from the LLM2Rec row of results.json."""

from __future__ import annotations

import json

import pytest

from llm2rec.config import load_config
from llm2rec.io import atomic_write_json
from llm2rec.train import contrastive, csft, mntp
from tests.benchmarks.conftest import REPO, load_benchmark

MODULES = {"csft": csft, "mntp": mntp, "contrastive": contrastive}


@pytest.fixture(scope="module")
def budget():
    return load_benchmark("budget_curve")


def test_scale_one_is_the_cpu_presets_and_other_scales_keep_the_schedule_shape(budget):
    for name, settings in budget.scaled_settings(1.0).items():
        preset = MODULES[name].build_config("cpu")
        assert all(getattr(preset, key) == value for key, value in settings.items())
    quarter = budget.scaled_settings(0.25)
    assert quarter["csft"]["max_steps"] == 60 and quarter["csft"]["schedule_steps"] == 120
    assert quarter["mntp"]["max_steps"] == 25 and quarter["mntp"]["schedule_steps"] == 50
    assert quarter["contrastive"]["schedule_epochs"] == pytest.approx(1.25)
    double = budget.scaled_settings(2.0)
    assert double["contrastive"]["max_steps"] == 50 and double["csft"]["warmup_steps"] == 24


def test_the_run_command_is_a_valid_run_config_for_every_stage(budget, tmp_path):
    command = budget.run_command(REPO / "configs" / "cpu-small.yaml", tmp_path / "run", 0.5, 7)
    sets = [command[i + 1] for i, arg in enumerate(command) if arg == "--set"]
    cfg = load_config(REPO / "configs" / "cpu-small.yaml", sets)
    assert cfg["encoders"] == ["llm2rec"] and cfg["seqrec"]["seeds"] == [7]
    for name, module in MODULES.items():
        config = module.build_config("cpu", **cfg[name])  # unknown or inconsistent keys raise here
        assert config.max_steps == budget.scaled_settings(0.5)[name]["max_steps"]


def test_points_read_the_llm2rec_row_and_the_llm_stage_time(budget, tmp_path):
    def entry(encoder, recommender, recall):
        return {"encoder": encoder, "recommender": recommender,
                "metrics": {"recall@10": {"mean": recall}, "ndcg@10": {"mean": recall / 2}}}  # fmt: skip

    results = {
        "entries": [
            entry("id", "sasrec", 0.9),
            entry("llm2rec", "sasrec", 0.2),
            entry("llm2rec", "knn", 0.1),
        ],
        "stage_wall_seconds": {"csft": 10.0, "mntp": 5.0, "contrastive": 2.5, "embed:llm2rec": 99.0},
    }
    (tmp_path / "results.json").write_text(json.dumps(results))
    row = budget.point(tmp_path, 0.5)
    assert row["sasrec_recall@10"] == 0.2 and row["knn_ndcg@10"] == 0.05 and row["llm_stage_seconds"] == 17.5
    assert row["precision"] is None  # no stage records: unknown, not guessed
    for stage, precision in (("csft", "no"), ("mntp", "no"), ("contrastive", "bf16")):
        (tmp_path / stage).mkdir()
        (tmp_path / stage / f"{stage}.json").write_text(json.dumps({"precision": precision}))
    marked = budget.point(tmp_path, 0.5)
    assert marked["precision"] == "bf16+fp32"
    budget.plot([row, {**marked, "scale": 1.0}], tmp_path / "curve.png")  # one point marked, one not
    assert (tmp_path / "curve.png").stat().st_size > 0


def test_saved_points_are_kept_across_calls_unless_stale_or_run_again(budget, tmp_path):
    def saved(scale, settings=None):
        return {
            "scale": scale,
            "sasrec_recall@10": scale / 10,
            "settings": settings or budget.scaled_settings(scale),
        }

    stale = budget.scaled_settings(0.5)
    stale["contrastive"] = {**stale["contrastive"], "max_steps": 999}  # made with another preset
    path = tmp_path / "curve.json"
    atomic_write_json(
        path,
        {
            "config": "configs/cpu-small.yaml",
            "seed": 2024,
            "points": [saved(0.25), saved(0.5, stale), saved(1.0)],
        },
    )
    kept = budget.kept_points(path, "configs/cpu-small.yaml", 2024, rerun={1.0})
    assert [p["scale"] for p in kept] == [0.25]  # 0.5 is stale, 1.0 is being run again
    assert budget.kept_points(path, "configs/cpu-small.yaml", 7, rerun=set()) == []  # another seed
    assert budget.kept_points(path, "configs/other.yaml", 2024, rerun=set()) == []
    assert budget.kept_points(tmp_path / "missing.json", "configs/cpu-small.yaml", 2024, set()) == []


def test_the_json_names_the_config_without_a_machine_path(budget, tmp_path):
    assert budget.config_label(REPO / "configs" / "cpu-small.yaml") == "configs/cpu-small.yaml"
    assert budget.config_label(tmp_path / "mine.yaml") == "mine.yaml"
