"""``prepare`` from a description: the one path from a run config's ``dataset`` section (or the
``llm2rec prepare`` options) to a prepared dataset: check the output, read the input, apply the protocol."""

from __future__ import annotations

from pathlib import Path

from llm2rec.data.dataset import Dataset
from llm2rec.data.protocol import ProtocolSettings, prepare
from llm2rec.data.writer import DATASET_KIND


def prepare_from_spec(spec: dict, out: str | Path, *, overwrite: bool = False) -> Dataset:
    """Read and prepare the data a run config's ``dataset`` section (or ``llm2rec prepare``) describes.

    ``spec`` has every key of that section: ``format``, ``input``, ``kcore``, ``max_history``, ``split``,
    ``cutoffs``, ``min_rating``, ``skip_bad_lines``, ``keep_duplicates``, ``options`` (reader options),
    ``num_users``, ``num_items`` (``builtin`` only), ``seed`` (``builtin``'s generator and the user sample's),
    ``sample_users``, ``cold_items`` / ``cold_after`` and ``cold_titles_known`` (cold-start items).
    """
    from llm2rec.data.sources import load_raw
    from llm2rec.outdir import check_output

    # Before any work: never replace an input or a directory that is not a previous dataset.
    check_output(out, DATASET_KIND, overwrite=overwrite, inputs=spec["input"], legacy=("manifest.json",))
    settings = check_spec(spec)
    raw = load_raw(
        spec["format"],
        [Path(p) for p in spec["input"]],
        skip_bad_lines=spec["skip_bad_lines"],
        options=spec["options"],
        shipped_split=spec["split"] == "shipped",
        num_users=spec["num_users"],
        num_items=spec["num_items"],
        seed=spec["seed"],
    )
    return prepare(raw, out, settings, overwrite=overwrite)


def check_spec(spec: dict) -> ProtocolSettings:
    """What a ``dataset`` section can be refused for without reading a byte of it (the format, the
    inputs' presence, the protocol's settings): ``run`` asks before it creates its directory."""
    from llm2rec.data.sources import check_source

    check_source(spec["format"], spec["input"])
    settings = ProtocolSettings(
        spec["kcore"],
        spec["max_history"],
        spec["split"],
        tuple(spec["cutoffs"]),
        spec["min_rating"],
        dedup=not spec["keep_duplicates"],
        sample_users=spec["sample_users"],
        sample_seed=spec["seed"],
        cold_items=spec["cold_items"],
        cold_after=spec["cold_after"],
        cold_titles_known=spec["cold_titles_known"],
    )
    settings.validate()
    return settings
