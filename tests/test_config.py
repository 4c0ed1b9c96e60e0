from __future__ import annotations

from pathlib import Path

import pytest

from llm2rec.config import DEFAULTS, load_config
from llm2rec.errors import ConfigError


def test_defaults_file_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("dataset:\n  format: recbole\n  input: [a]\ncsft:\n  lr: 0.001\n")
    cfg = load_config(path, ["csft.max_steps=20", "seqrec.seeds=[1, 2]", "encoders=[id, llm2rec]"])
    assert cfg["dataset"]["format"] == "recbole" and cfg["dataset"]["kcore"] == DEFAULTS["dataset"]["kcore"]
    assert cfg["csft"] == {"lr": 0.001, "max_steps": 20}
    assert cfg["seqrec"]["seeds"] == [1, 2] and cfg["encoders"] == ["id", "llm2rec"]
    assert DEFAULTS["csft"] == {}  # defaults are never mutated


@pytest.mark.parametrize(
    "override, message",
    [("bogus=1", "unknown config key"), ("encoders=[nope]", "unknown encoder"), ("dataset.kcroe=3", "dataset"),
     ("novalue", "key=value")],
)  # fmt: skip
def test_bad_config_is_refused(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


@pytest.mark.parametrize(
    "yaml_text, key",
    [
        ("csft:\n  max_stepz: 3\n", "csft.max_stepz"),
        ("mntp:\n  lr: fast\n", "mntp.lr"),
        ("contrastive:\n  batch_size: [64]\n", "contrastive.batch_size"),
        ("contrastive_pairs:\n  pair_gapp: 2\n", "contrastive_pairs.pair_gapp"),
    ],
)
def test_every_stage_section_is_checked_whatever_the_plan(tmp_path, yaml_text, key):
    """`encoders: [id]` trains no LLM stage; a typo or a wrong type under a stage's section is still refused,
    by a message naming the section and the key (issue 35)."""
    path = tmp_path / "c.yaml"
    path.write_text("encoders: [id]\n" + yaml_text)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config(path)


def test_run_refuses_a_typo_under_an_unplanned_stage_before_creating_anything(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "c.yaml"
    path.write_text("encoders: [id]\ncsft:\n  max_stepz: 3\n")
    run_dir = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "llm2rec.cli", "run", str(path), "--out", str(run_dir)],
                       capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 2 and "csft.max_stepz" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not run_dir.exists()


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_one_grammar_for_every_override():
    from llm2rec.config import parse_assignment, parse_assignments

    assert parse_assignment("csft.max-steps=20") == ("csft.max_steps", 20)
    assert parse_assignments(["lr=1e-4", "lora=true", "seeds=[1, 2]", "lr=2e-4"]) == {
        "lr": 2e-4,
        "lora": True,
        "seeds": [1, 2],
    }
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_assignment("seeds=[1, 2")
    # YAML 1.1's yes/no/on/off are words on a command line; only true/false are booleans.
    assert parse_assignment("mixed_precision=no") == ("mixed_precision", "no")
    assert parse_assignment("x=On") == ("x", "On")
    assert parse_assignment("x=False") == ("x", False)


def test_reader_options_may_be_written_as_assignments():
    cfg = load_config(None, ["dataset.options=[user_col=uid, sep=';']"])
    assert cfg["dataset"]["options"] == {"user_col": "uid", "sep": ";"}


def test_stage_settings_use_one_spelling():
    from llm2rec.train import TRAINING_STAGES, training_stage_module
    from llm2rec.train.config import StageConfig

    for name in TRAINING_STAGES:
        config = training_stage_module(name).build_config("cpu")
        assert isinstance(config, StageConfig) and not hasattr(config, "effective_batch")
    # the old CSFT spelling still works as an override, and sets the one field
    assert training_stage_module("csft").build_config("cpu", effective_batch=16).batch_size == 16


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "llm2rec" / "configs").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_builds_every_training_stage(path):
    """A typo in a shipped config's stage section fails here, not an hour into a run."""
    from llm2rec.train import TRAINING_STAGES, stage_settings, training_stage_module

    cfg = load_config(path, [])
    for stage in TRAINING_STAGES:
        module = training_stage_module(stage)
        module.build_config(cfg.get("preset", "paper"), **stage_settings(stage, cfg))


def test_one_pass_configs_give_the_steps_set_by_hand_before():
    """Office's contrastive stage is one pass (max_epochs): 2,338 distinct titles, 36 steps of 64."""
    from llm2rec.train import contrastive, stage_settings

    cfg = load_config(Path(__file__).resolve().parents[1] / "configs" / "cpu-small-office.yaml", [])
    config = contrastive.build_config("cpu", **stage_settings("contrastive", cfg))
    assert config.for_examples(2338).max_steps == 36
