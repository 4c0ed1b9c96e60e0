"""Input readers, one module per format, all returning a :class:`llm2rec.data.schema.RawLog`.

========================  ===========================================================================
format                    module and files
========================  ===========================================================================
``amazon2023``            :mod:`.amazon2023`: ``<Category>.jsonl[.gz]`` + ``meta_<Category>.jsonl[.gz]``
``amazon2023-benchmark``  :mod:`.amazon2023_benchmark`: ``<Category>[.<split>].csv[.gz]`` + a meta file
``recbole``               :mod:`.recbole`: ``.inter`` (+ ``.item`` or ``.text``, ``.item2index``, ``.user2index``)
``d3``                    :mod:`.d3`: D3/BIGRec CSVs (+ ``info/*.txt``, ``index/*.item.json``)
``generic``               :mod:`.generic`: interactions CSV/TSV/Parquet + items CSV/TSV/Parquet/JSONL
========================  ===========================================================================

Each reader is ``read(inputs: list[Path], *, bad: BadLines, **options) -> RawLog``. :func:`load_raw` is
the one entry point of ``prepare`` and ``run``: it also knows ``builtin`` (the synthetic generator).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

from llm2rec.data.schema import BadLines, RawLog
from llm2rec.errors import ConfigError

_MODULES = {
    "amazon2023": "amazon2023",
    "amazon2023-benchmark": "amazon2023_benchmark",
    "recbole": "recbole",
    "d3": "d3",
    "generic": "generic",
}


def _lazy(module: str) -> Callable[..., RawLog]:
    def read(inputs: list[Path], *, bad: BadLines, **options) -> RawLog:
        return importlib.import_module(f"{__name__}.{module}").read(inputs, bad=bad, **options)

    read.__name__ = f"read_{module}"
    return read


READERS: dict[str, Callable[..., RawLog]] = {fmt: _lazy(module) for fmt, module in _MODULES.items()}


def read_source(fmt: str, inputs: list[Path], *, skip_bad_lines: bool = False, **options) -> RawLog:
    """Read ``inputs`` (files or directories) in format ``fmt``; bad lines raise unless ``skip_bad_lines``."""
    if fmt not in READERS:
        raise ConfigError(f"unknown input format {fmt!r}; known formats: {', '.join(READERS)}")
    if not inputs:
        raise ConfigError(f"format {fmt!r} needs at least one input file or directory")
    return READERS[fmt]([Path(p) for p in inputs], bad=BadLines(skip=skip_bad_lines), **options)


FORMATS = (*READERS, "builtin")


def check_source(fmt: str, paths: list) -> None:
    """What a source can be refused for before a byte of it is read: its format, and its inputs' presence."""
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if fmt == "builtin":
        return
    if not paths:
        raise ConfigError("--input is required for this format")
    for p in paths:
        if not Path(p).exists():
            raise FileNotFoundError(f"input not found: {p}")


def load_raw(
    fmt: str,
    paths: list[Path],
    *,
    skip_bad_lines: bool = False,
    options: dict | None = None,
    shipped_split: bool = False,
    num_users: int = 3000,
    num_items: int = 1500,
    seed: int = 0,
) -> RawLog:
    """The raw log of ``paths`` in format ``fmt``, or the seeded synthetic one for ``builtin``.

    ``shipped_split`` asks the reader to keep the split the source ships (``--split shipped``).
    """
    check_source(fmt, paths)
    if fmt == "builtin":
        from llm2rec.data.synthetic import generate

        return generate(num_users=num_users, num_items=num_items, seed=seed)
    options = dict(options or {})
    if shipped_split:
        options.setdefault("use_shipped_split", True)
    return read_source(fmt, paths, skip_bad_lines=skip_bad_lines, **options)
