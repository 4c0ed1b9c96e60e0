"""The versions a result was made with: this package's own, and the libraries every number depends on.

Read from the installed packages' metadata (``importlib.metadata``), never by importing them: recording
them costs nothing and loads no torch. ``constraints.txt`` at the repository root pins the versions the
test suite passes with (``scripts/setup_env.sh`` installs with it).
"""

from __future__ import annotations

from importlib import metadata

# The libraries a stage record and a run's results.json name (distribution names, as pip spells them).
RECORDED = (
    "llm2rec",
    "torch",
    "transformers",
    "accelerate",
    "peft",
    "sentence-transformers",
    "numpy",
    "pandas",
)


def package_version() -> str:
    """llm2rec's version: from the installed package's metadata, else (a source tree on ``sys.path``,
    not installed) the one the source declares."""
    try:
        return metadata.version("llm2rec")
    except metadata.PackageNotFoundError:
        from llm2rec import __version__

        return __version__


def library_versions() -> dict[str, str | None]:
    """``{distribution: version}`` for :data:`RECORDED`; ``None`` for one that is not installed (e.g.
    sentence-transformers without the ``st`` extra). torch keeps its local label (``2.13.0+cpu``)."""
    found: dict[str, str | None] = {}
    for name in RECORDED:
        if name == "llm2rec":
            found[name] = package_version()
            continue
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found
