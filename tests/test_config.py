from __future__ import annotations

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


def test_missing_or_invalid_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
