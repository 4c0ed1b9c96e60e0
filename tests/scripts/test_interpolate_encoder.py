"""scripts/interpolate_encoder.py: weights between two stages, the rest copied from the end model."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "interpolate_encoder.py"


def _script():
    spec = importlib.util.spec_from_file_location("interpolate_encoder", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model(path: Path, tensors: dict) -> Path:
    path.mkdir()
    save_file(tensors, path / "model.safetensors")
    (path / "config.json").write_text(json.dumps({"architectures": [path.name]}))
    return path


@pytest.fixture
def models(tmp_path):
    # start: a causal-LM checkpoint (prefix "model.", an LM head); end: the base model an encoder holds
    start = _model(tmp_path / "mntp", {"model.w": torch.zeros(2, 3), "lm_head.weight": torch.ones(4, 3)})
    end = _model(tmp_path / "contrastive", {"w": torch.full((2, 3), 4.0)})
    return start, end


@pytest.mark.parametrize("alpha, value", [(0.0, 0.0), (0.25, 1.0), (1.0, 4.0)])
def test_weights_lie_between_the_two_models(models, tmp_path, alpha, value):
    start, end = models
    out = tmp_path / "out"
    assert (
        _script().main(["--start", str(start), "--end", str(end), "--alpha", str(alpha), "--out", str(out)])
        == 0
    )
    weights = load_file(out / "model.safetensors")
    assert set(weights) == {"w"}  # the head and the prefix of the causal-LM checkpoint are gone
    assert torch.equal(weights["w"], torch.full((2, 3), value))
    assert json.loads((out / "config.json").read_text()) == {"architectures": ["contrastive"]}


def test_an_existing_output_is_refused_and_left_alone(models, tmp_path):
    start, end = models
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(SystemExit, match="exists"):
        _script().main(["--start", str(start), "--end", str(end), "--alpha", "0.5", "--out", str(out)])
    assert (out / "keep.txt").read_text() == "mine"


def test_models_of_different_shapes_are_refused(tmp_path):
    start = _model(tmp_path / "a", {"w": torch.zeros(2)})
    end = _model(tmp_path / "b", {"v": torch.zeros(2)})
    with pytest.raises(SystemExit, match="differ"):
        _script().main(
            ["--start", str(start), "--end", str(end), "--alpha", "0.5", "--out", str(tmp_path / "o")]
        )
