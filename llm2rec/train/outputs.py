"""What every LLM stage hands on: a plain Hugging Face model dir, plus its record and training logs.

Layout of a finished stage's ``--out``: the chosen checkpoint's model and tokenizer files, ``<stage>.json``
(settings, data checksum, losses, wall time), ``metrics.jsonl`` and, when the run logged to TensorBoard,
``logs/`` (the event files). Training state lives in ``<out>.work`` until the stage is published.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from llm2rec.io import atomic_dir, atomic_write_json

# Where the training loop's trackers write (Accelerate: project_dir / run name), and where it is published.
TRACKER_RUN = "llm2rec"
PUBLISHED_LOGS = "logs"


def finished(out_dir: Path, stage: str) -> bool:
    """True when ``out_dir`` holds a published ``stage`` (its record and a model config)."""
    out_dir = Path(out_dir)
    return (out_dir / f"{stage}.json").is_file() and (out_dir / "config.json").is_file()


def publish(result, work: Path, out_dir: Path, stage: str, record: dict, *, keep_work: bool) -> None:
    """Copy the chosen model dir to ``out_dir`` with ``<stage>.json``, the metrics and tracker logs, atomically."""
    with atomic_dir(out_dir, overwrite=True) as tmp:
        shutil.copytree(result.chosen_dir, tmp, dirs_exist_ok=True)
        shutil.copy2(work / "metrics.jsonl", tmp / "metrics.jsonl")
        if (work / TRACKER_RUN).is_dir():
            shutil.copytree(work / TRACKER_RUN, tmp / PUBLISHED_LOGS)
        atomic_write_json(tmp / f"{stage}.json", record)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
