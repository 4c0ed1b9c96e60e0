"""The versions a result records (llm2rec.versions) and ``llm2rec --version`` (issue 36)."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import llm2rec
from llm2rec import versions


def test_library_versions_are_the_installed_ones():
    found = versions.library_versions()
    assert list(found) == list(versions.RECORDED)
    assert {"torch", "transformers", "accelerate", "peft", "sentence-transformers", "numpy", "pandas"} < set(
        found
    )
    for name, version in found.items():
        assert version == metadata.version(name)


def test_a_library_that_is_not_installed_is_none(monkeypatch):
    real = metadata.version

    def version(name):
        if name == "sentence-transformers":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(versions.metadata, "version", version)
    found = versions.library_versions()
    assert found["sentence-transformers"] is None and found["torch"] == real("torch")


def test_the_version_falls_back_to_the_source_when_llm2rec_is_not_installed(monkeypatch):
    def version(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(versions.metadata, "version", version)
    assert versions.package_version() == llm2rec.__version__
    assert versions.library_versions()["llm2rec"] == llm2rec.__version__


def test_the_source_and_the_installed_metadata_agree():
    # pyproject reads its version from llm2rec.__version__: one place it is written
    assert metadata.version("llm2rec") == llm2rec.__version__


def test_reading_the_versions_imports_no_library():
    code = (
        "import sys; from llm2rec.versions import library_versions; v = library_versions(); "
        "heavy = {'torch', 'transformers', 'accelerate', 'peft', 'sentence_transformers', 'pandas', 'numpy'}; "
        "print(sorted(heavy & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_python_m_llm2rec_version_prints_the_version():
    done = subprocess.run([sys.executable, "-m", "llm2rec", "--version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout == metadata.version("llm2rec") + "\n"


def test_the_llm2rec_command_prints_the_installed_version():
    script = Path(sys.executable).parent / "llm2rec"
    if not script.is_file():
        pytest.skip(f"no llm2rec console script beside {sys.executable}")
    done = subprocess.run([str(script), "--version"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == metadata.version("llm2rec")


def test_version_in_process_and_help_still_lists_the_commands():
    from typer.testing import CliRunner

    from llm2rec.cli import app

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == versions.package_version()
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "--version" in result.output and "csft" in result.output
