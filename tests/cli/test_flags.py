"""Every named flag maps to one config field, restates no default, and reaches the config (issue 36 §1).

The defaults live in the settings dataclasses only (``SeqRecConfig`` / ``TrainConfig``, each stage's
config); a flag defaults to "unset" and is passed on only when given. The next flag that restates a
default, or is declared and never passed on (``--exclude-history`` was), fails here.
"""

from __future__ import annotations

from dataclasses import fields

import pytest
from typer.testing import CliRunner

from tests.cli.test_settings import _commands

# Parameters that are not settings: where to read and write, what to do, how to run.
NOT_SETTINGS = {
    "seqrec": {"dataset", "out", "evaluate_only", "embeddings", "seeds", "more_seeds", "threads", "overwrite",
               "resume", "set_"},
    "csft": {"dataset", "model", "out", "preset", "resume", "overwrite", "set_", "legacy"},
    "mntp": {"dataset", "model", "out", "preset", "resume", "overwrite", "set_"},
    "contrastive": {"dataset", "model", "out", "preset", "resume", "overwrite", "set_"},
}  # fmt: skip
# A value other than every default, per flag (what the test types on the command line).
SEQREC_VALUES = {
    "model": "gru4rec", "item_repr": "text+id", "adapter": "mlp", "finetune_vectors": True,
    "vector_norm": "l2", "epochs": 7, "eval_every": 3, "patience": 4, "valid_metric": "ndcg@10",
    "ks": "10,20", "lr": 0.5, "weight_decay": 0.25, "batch_size": 17, "hidden": 48, "layers": 3,
    "heads": 4, "ffn": 40, "dropout": 0.125, "supervise": "last", "exclude_history": True,
    "std": "sample", "device": "cpu", "quiet": True, "plots": False,
}  # fmt: skip


def _seqrec_fields() -> set[str]:
    from llm2rec.seqrec.config import SeqRecConfig, TrainConfig

    return {f.name for f in fields(SeqRecConfig)} | {f.name for f in fields(TrainConfig)}


def test_every_seqrec_flag_is_a_config_field_and_defaults_to_unset():
    from llm2rec.cli.seqrec import SETTING_FLAGS

    command = _commands()["seqrec"]
    params = {p.name: p for p in command.params}
    assert set(params) == set(SETTING_FLAGS) | NOT_SETTINGS["seqrec"], "classify every new flag"
    assert set(SETTING_FLAGS.values()) <= _seqrec_fields() - {"train"}
    restated = {name: params[name].default for name in SETTING_FLAGS if params[name].default is not None}
    assert restated == {}, f"flags restating a default (the config's is the one home): {restated}"
    assert set(SEQREC_VALUES) == set(SETTING_FLAGS)


def _argv(name: str, value) -> list[str]:
    flag = "--" + name.replace("_", "-")
    if value is True:
        return [flag]
    if value is False:
        return ["--no-plots"] if name == "plots" else [f"--no-{name.replace('_', '-')}"]
    return [flag, str(value)]


@pytest.mark.parametrize("name", sorted(SEQREC_VALUES))
def test_every_seqrec_flag_reaches_the_config(name, tmp_path, monkeypatch):
    import llm2rec.seqrec.run as run_module
    from llm2rec.cli import app
    from llm2rec.cli.seqrec import SETTING_FLAGS

    seen = {}

    def capture(dataset, **kwargs):
        seen.update(kwargs)
        return {"model": "x", "metrics": {}}

    monkeypatch.setattr(run_module, "run_seqrec", capture)
    argv = [
        "seqrec",
        "--dataset",
        str(tmp_path),
        "--out",
        str(tmp_path / "out"),
        *_argv(name, SEQREC_VALUES[name]),
    ]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    field, value = SETTING_FLAGS[name], SEQREC_VALUES[name]
    expected = {"ks": (10, 20), "quiet": False}.get(name, value)
    assert seen.get(field) == expected, f"--{name} did not reach {field}: {seen}"
    assert set(seen) - {"embeddings", "seeds", "out_dir", "overwrite", "resume"} == {field}, seen


def test_a_derived_value_is_derived_once_whatever_the_entry_point():
    from llm2rec.seqrec.config import config_from_overrides

    # ffn follows hidden, from a flag, --set or YAML alike (it was 2 × 64 from the flag, 256 from --set)
    assert config_from_overrides(hidden=64).resolved(False).ffn == 128
    assert config_from_overrides(hidden=64, ffn=40).resolved(False).ffn == 40
    assert config_from_overrides().resolved(False).ffn == 256


@pytest.mark.parametrize("stage", ["csft", "mntp", "contrastive"])
def test_every_stage_flag_is_a_config_field_and_defaults_to_unset(stage):
    from llm2rec.train import training_stage_module

    cls = type(training_stage_module(stage).build_config("cpu"))
    names = {f.name for f in fields(cls)}
    command = _commands()[stage]
    settings = [p for p in command.params if p.name not in NOT_SETTINGS[stage]]
    assert settings, stage
    for param in settings:
        assert param.name in names, f"{stage} --{param.name} is not a {cls.__name__} field"
        assert param.default is None, f"{stage} --{param.name} restates a default ({param.default})"


def test_the_default_seeds_have_one_home():
    from llm2rec.config import DEFAULTS
    from llm2rec.seqrec.config import DEFAULT_SEEDS

    assert DEFAULTS["seqrec"]["seeds"] == list(DEFAULT_SEEDS)


def test_one_default_preset_for_every_entry_point_chosen_by_the_hardware(monkeypatch):
    import inspect

    import torch

    from llm2rec.config import DEFAULTS, load_config
    from llm2rec.train.config import DEFAULT_PRESET, resolve_preset
    from llm2rec.train.csft import run_csft

    assert DEFAULTS["preset"] == DEFAULT_PRESET == "auto"
    assert inspect.signature(run_csft).parameters["preset"].default == DEFAULT_PRESET
    for stage in ("csft", "mntp", "contrastive"):
        assert {p.name: p.default for p in _commands()[stage].params}["preset"] == DEFAULT_PRESET
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_preset("auto") == "paper" and resolve_preset("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_preset("auto") == "cpu"
    assert load_config(None)["preset"] == "cpu"  # a run records the preset it chose, not "auto"


def test_an_unknown_preset_is_refused_by_the_command(tmp_path):
    from llm2rec.cli import app

    result = CliRunner().invoke(
        app, ["csft", "-d", str(tmp_path), "--out", str(tmp_path / "o"), "--preset", "laptop"]
    )
    # refused before any work (llm2rec.cli.main prints it as one error: line, exit 2: tests/test_bad_inputs.py)
    assert "unknown preset 'laptop'; choose one of auto, paper, cpu" in str(result.exception)
