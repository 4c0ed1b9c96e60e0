"""The skeleton every LLM stage (CSFT, MNTP, contrastive) runs, written once.

A stage is a :class:`Stage`: its name, and two functions. ``build`` gets the :class:`StageInputs`
(settings, the model to start from, the dataset, this process, the work dir) and returns the
:class:`StageParts` the training loop needs (model, tokenizer, data, collator, loss, evaluation);
``summarise`` adds the stage's own fields to its record once training is done. :func:`run_stage` does the
rest, the same way for all three: skip a finished output, start the processes' state, train on the loop
(resuming from ``<out>.work``), write the record and publish the chosen model (see
:mod:`llm2rec.train.outputs`), then wait for every process.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from llm2rec.errors import ConfigError, DatasetError, OutputError
from llm2rec.io import portable_path, work_dir_for
from llm2rec.train.config import StageConfig
from llm2rec.train.identity import differences, recorded_identity, stage_identity
from llm2rec.train.outputs import (
    IDENTITY_FILE,
    WORK_FILES,
    WORK_KIND,
    WORK_LEGACY,
    finished,
    output_kind,
    publish,
    read_record,
    record_name,
)
from llm2rec.versions import library_versions

log = logging.getLogger(__name__)


@dataclass
class StageInputs:
    config: StageConfig
    model: str  # what the stage starts from, as given (a stage output, a model dir, a backbone name)
    dataset: Any  # llm2rec.data.dataset.Dataset
    state: Any  # accelerate.PartialState of this process
    work: Path  # <out>.work: checkpoints and caches while the stage runs
    resume: bool


@dataclass
class StageParts:
    """What the training loop needs, plus record fields known before training."""

    model: Any
    tokenizer: Any
    train_set: Any
    collator: Callable
    loss_fn: Callable
    eval_set: Any = None
    eval_fn: Callable | None = None
    record: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)  # stage-private values that build hands to summarise


@dataclass(frozen=True)
class Stage:
    name: str
    build: Callable[[StageInputs], StageParts]
    summarise: Callable[[StageInputs, StageParts, Any], dict]  # (inputs, parts, LoopResult) -> fields


def run_stage(
    stage: Stage,
    model: str | Path,
    dataset_dir: str | Path,
    out_dir: str | Path,
    config: StageConfig,
    *,
    preset: str | None,
    resume: bool = True,
    overwrite: bool = False,
) -> Path:
    """Train ``stage`` from ``model`` on the prepared dataset and publish it at ``out_dir``; returns it.

    A finished ``out_dir`` and an interrupted state in ``<out_dir>.work`` are used only under the same
    identity (settings, starting model, dataset; :mod:`llm2rec.train.identity`): with ``resume``, the
    finished output is returned as is and the state continues from its last checkpoint; without it, both
    are started afresh. Under another identity either one is refused, naming the keys that differ, unless
    ``overwrite`` (then the stage starts afresh and replaces it).
    """
    from llm2rec.data.dataset import Dataset
    from llm2rec.distributed import process_state
    from llm2rec.llm.backbone import check_attn_implementation
    from llm2rec.train.loop import train_loop
    from llm2rec.train.setup import resolve_precision

    check_attn_implementation(config.attn_implementation)
    out_dir, dataset = Path(out_dir), Dataset.load(dataset_dir)
    work, wanted = work_dir_for(out_dir), stage_identity(model, dataset.checksum, config)
    if _reusable_output(stage.name, out_dir, wanted, resume=resume, overwrite=overwrite):
        log.info("%s is a finished %s run; nothing to do (resume off to redo it)", out_dir, stage.name)
        return out_dir
    _check_outputs(stage.name, out_dir, work, inputs=[dataset_dir, model])
    resume = resume and _resumable_state(stage.name, work, wanted, overwrite=overwrite)
    state, started = process_state(), time.perf_counter()
    state.wait_for_everyone()  # every process has read <out>.work before the main one writes there
    if state.is_main_process:
        _start_state(work, wanted, fresh=not resume)
    state.wait_for_everyone()
    inputs = StageInputs(config, str(model), dataset, state, work, resume)
    parts = stage.build(inputs)
    if config.select_by in ("knn", "sasrec"):
        _select_on_valid_probe(parts, inputs, config)
    result = train_loop(
        parts.model,
        parts.train_set,
        parts.collator,
        parts.loss_fn,
        config,
        work,
        eval_dataset=parts.eval_set,
        eval_fn=parts.eval_fn,
        tokenizer=parts.tokenizer,
        resume=resume,
    )
    record = {
        "stage": stage.name,
        "model": portable_path(model, out_dir),  # relative to the output: a moved run keeps its records true
        "dataset": portable_path(dataset_dir, out_dir),
        "dataset_checksum": inputs.dataset.checksum,
        "identity": wanted,
        "preset": preset,
        "config": asdict(config),
        **parts.record,
        **stage.summarise(inputs, parts, result),
        "chosen": result.chosen_dir.name,
        "best_step": result.best_step,
        "last_step": result.last_step,
        "processes": state.num_processes,
        # what auto resolved to ("no" = fp32): wall_s means little without it
        "precision": resolve_precision(config.mixed_precision, say=False),
        "versions": library_versions(),  # llm2rec, torch, transformers, ...: what these numbers came from
        # this process only: a resumed run's earlier attempts are in the pipeline's wall_seconds
        "wall_s": time.perf_counter() - started,
    }
    parts.model = None  # published from disk from here on; the next stage in this process needs the memory
    if state.is_main_process:
        publish(result, work, out_dir, stage.name, record, keep_work=config.keep_work)
    state.wait_for_everyone()
    return out_dir


def _select_on_valid_probe(parts: StageParts, inputs: StageInputs, config: StageConfig) -> None:
    """Evaluate (and choose the checkpoint) on the valid split's knn or SASRec Recall@20 of the stage's
    vectors, besides the stage's own held-out metrics when it has them (see :mod:`llm2rec.train.probe`)."""
    from llm2rec.train.loop import mean_loss_eval
    from llm2rec.train.probe import SELECTION_METRICS, ValidKnnProbe, ValidSASRecProbe, with_probe_selection

    if not config.eval_every:
        raise ConfigError(f"select_by={config.select_by} needs eval_every (steps between evaluations)")
    try:
        inputs.dataset.split("valid")
    except DatasetError:
        # A titles-only dataset (no interactions) can still train MNTP/contrastive, on their own criterion.
        log.warning("the dataset has no valid split: choosing the checkpoint by the stage's own loss")
        return
    own = parts.eval_fn or (mean_loss_eval(parts.loss_fn) if parts.eval_set is not None else None)
    probe = (
        ValidSASRecProbe(inputs.dataset, parts.tokenizer, config.max_length, seqrec=config.probe_seqrec)
        if config.select_by == "sasrec"
        else ValidKnnProbe(inputs.dataset, parts.tokenizer, config.max_length)
    )
    parts.eval_fn = with_probe_selection(own, probe, SELECTION_METRICS[config.select_by])
    if parts.eval_set is None:  # the loop evaluates only when it has a set; the probe reads no batch
        parts.eval_set = [parts.train_set[0]]


def _reusable_output(name: str, out_dir: Path, wanted: dict, *, resume: bool, overwrite: bool) -> bool:
    """Whether a finished ``out_dir`` is handed on as is; refuses one made under another identity."""
    from llm2rec.outdir import marker_kind

    if not finished(out_dir, name) or marker_kind(out_dir) != output_kind(name):
        return False  # not ours to hand on (nor to replace: the output checks say so)
    differ = differences(recorded_identity(read_record(out_dir, name)), wanted)
    if not differ:
        return resume
    if overwrite:
        return False
    raise OutputError(
        f"--out {out_dir} is a finished {name} output made with another {_keys(differ)}; pass --overwrite "
        "to replace it, or choose another --out"
    )


def _resumable_state(name: str, work: Path, wanted: dict, *, overwrite: bool) -> bool:
    """Whether the training state in ``work`` may be continued: only one recorded under ``wanted``."""
    if not (work / "checkpoints").is_dir() and not (work / "done.json").is_file():
        return True  # nothing to continue: the loop starts afresh either way
    try:
        recorded = json.loads((work / IDENTITY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        recorded = None
    differ = ["identity (not recorded)"] if recorded is None else differences(recorded, wanted)
    if not differ:
        return True
    if overwrite:
        return False
    raise OutputError(
        f"{work} holds an interrupted {name} run with another {_keys(differ)}; pass --overwrite to discard "
        "it (or --no-resume), or choose another --out"
    )


def _keys(differ: list[str]) -> str:
    return ("setting: " if len(differ) == 1 else "settings: ") + ", ".join(differ)


def _start_state(work: Path, wanted: dict, *, fresh: bool) -> None:
    """Record the identity the training state in ``work`` is made under (a fresh start removes the old
    state first: only what the marker of a training state accounts for)."""
    from llm2rec.io import atomic_write_json
    from llm2rec.outdir import remove_output, write_marker

    if fresh and work.exists():
        remove_output(work)
    work.mkdir(parents=True, exist_ok=True)
    write_marker(work, WORK_KIND, files=WORK_FILES)
    atomic_write_json(work / IDENTITY_FILE, wanted)


def _check_outputs(name: str, out_dir: Path, work: Path, inputs: list) -> None:
    """Before training: ``out_dir`` may only be a previous output of this stage (it is replaced when the
    stage is published), ``work`` only a previous training state (it may be removed); neither may hold
    an input."""
    from llm2rec.outdir import check_output

    local = [p for p in inputs if Path(p).exists()]  # hub ids are not paths
    check_output(out_dir, output_kind(name), overwrite=True, inputs=local, legacy=(record_name(name),))
    check_output(work, WORK_KIND, overwrite=True, inputs=local, legacy=WORK_LEGACY)


def evaluations(result) -> list[dict]:
    """The loop's held-out evaluations, in step order."""
    return [e for e in result.history if e["split"] == "eval"]


def resolve_config(build_config: Callable, config: StageConfig | None, preset: str, overrides: dict):
    """The settings a stage runs with: ``config`` as given (built once by the caller, e.g. the pipeline),
    or the preset with ``overrides``."""
    if config is None:
        return build_config(preset, **overrides)
    if any(v is not None for v in overrides.values()):
        raise ConfigError("give either a built config or preset overrides, not both")
    return config
