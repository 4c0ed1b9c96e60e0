"""What every LLM stage hands on (the stage-output contract), in one place.

A finished stage's ``--out`` is the chosen checkpoint's model and tokenizer files (a plain Hugging Face
directory), ``<stage>.json`` (settings, data checksum, losses, wall time), ``metrics.jsonl``, ``README.md``
(the model card: the directory can be published as it is) and, when the run logged to TensorBoard, ``logs/``
(the event files). While it trains, its state lives in ``<out>.work``
(:func:`llm2rec.io.work_dir_for`): the loop's ``checkpoints/``, ``best/`` and ``last/`` model dirs,
``metrics.jsonl`` and ``done.json`` (the loop's result; a loop dir with one is itself a valid model
reference, see :func:`llm2rec.llm.backbone.resolve_model_dir`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from llm2rec.io import atomic_dir, atomic_write_json

METRICS_FILE = "metrics.jsonl"
DONE_FILE = "done.json"
# Where the training loop's trackers write (Accelerate: project_dir / run name), and where it is published.
TRACKER_RUN = "llm2rec"
PUBLISHED_LOGS = "logs"


def record_name(stage: str) -> str:
    return f"{stage}.json"


# The training state in <out>.work: what its marker says, what it always holds (older runs: no marker),
# and everything the loop and the stages may write there, as its marker lists it (llm2rec.outdir).
WORK_KIND = "stage-work"
WORK_LEGACY = (METRICS_FILE, DONE_FILE, "checkpoints", "generation_before.json")
IDENTITY_FILE = "identity.json"  # the identity the state was trained under: resumed only under the same
WORK_FILES = (METRICS_FILE, DONE_FILE, IDENTITY_FILE, "generation_before.json", "checkpoints/", "best/",
              "last/", f"{TRACKER_RUN}/")  # fmt: skip


def output_kind(stage: str) -> str:
    """What the output marker of a published ``stage`` says (see :mod:`llm2rec.outdir`)."""
    return f"stage:{stage}"


def finished(out_dir: Path, stage: str) -> bool:
    """True when ``out_dir`` holds a published ``stage`` (its record and a model config)."""
    out_dir = Path(out_dir)
    return (out_dir / record_name(stage)).is_file() and (out_dir / "config.json").is_file()


def read_record(out_dir: str | Path, stage: str) -> dict:
    return json.loads((Path(out_dir) / record_name(stage)).read_text(encoding="utf-8"))


def read_metrics(out_dir: str | Path) -> list[dict]:
    """The ``metrics.jsonl`` entries of a published stage dir (or a loop dir); [] when there are none."""
    path = Path(out_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def publish(result, work: Path, out_dir: Path, stage: str, record: dict, *, keep_work: bool) -> None:
    """Copy the chosen model dir to ``out_dir`` with ``<stage>.json``, the metrics, tracker logs and the model
    card (``README.md``, :mod:`llm2rec.train.model_card`), atomically."""
    from llm2rec.train.model_card import write_model_card

    with atomic_dir(out_dir, overwrite=True, kind=output_kind(stage), legacy=(record_name(stage),)) as tmp:
        shutil.copytree(result.chosen_dir, tmp, dirs_exist_ok=True)
        shutil.copy2(work / METRICS_FILE, tmp / METRICS_FILE)
        if (work / TRACKER_RUN).is_dir():
            shutil.copytree(work / TRACKER_RUN, tmp / PUBLISHED_LOGS)
        atomic_write_json(tmp / record_name(stage), record)
        write_model_card(tmp, record, read_metrics(work), out_dir.name)
    if not keep_work:
        shutil.rmtree(work, ignore_errors=True)
