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

Each reader is ``read(inputs: list[Path], *, bad: BadLines, **options) -> RawLog``.
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
