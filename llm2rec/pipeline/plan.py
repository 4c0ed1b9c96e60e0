"""Planning a run: the stages a config needs, in order, each with its settings and fingerprint.

A stage's *fingerprint* is a hash of its own settings and of its upstream stages' fingerprints. The
dataset stage also hashes its input files' contents; a training stage hashes its settings object (its
preset resolved with the run's overrides, less display-only settings), which is built here once and
handed to the stage when it runs, so editing a preset in code re-runs it and what it feeds.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from llm2rec.config import is_multi
from llm2rec.embed.registry import encoder_spec
from llm2rec.io import atomic_write_json, sha256_file
from llm2rec.pipeline import actions
from llm2rec.pipeline.layout import RunLayout
from llm2rec.train import (
    TRAINING_STAGES,
    UPSTREAM,
    check_sections,
    stage_settings,
    training_chain,
    training_stage_module,
)
from llm2rec.train.config import identity

DATASET, TRAINING, EMBED, SEQREC = "dataset", "training", "embed", "seqrec"


# A text+ID row is named after its encoder with this suffix (``minilm+id``); the report reads it back.
WITH_ID = "+id"


@dataclass
class Stage:
    name: str
    kind: str  # dataset | training | embed | seqrec
    deps: list[str]
    settings: dict
    output: Path
    action: Callable  # (pipeline, stage, resume) -> None
    fingerprint: str = ""
    extra: dict = field(default_factory=dict)
    # Under torchrun / accelerate launch: run by every process (training, embedding), else by the main one.
    every_process: bool = False
    # What the stages downstream hash instead of the fingerprint, when set: the content of the output
    # (dataset stages: their tables, so a change that leaves the tables as they were re-trains nothing).
    content: str = ""

    @property
    def handed_on(self) -> str:
        return self.content or self.fingerprint


def fingerprint(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def plan_stages(cfg: dict, layout: RunLayout) -> dict[str, Stage]:
    """Every stage ``cfg`` needs, in a valid order. Cheap encoders come first, each followed by its
    recommenders, so their results (and, with seqrec.workers > 1, their seqrec jobs) do not wait for the
    LLM training stages. A multi-dataset run embeds and evaluates every encoder on every evaluation
    dataset (stage names end in ``@<dataset>``)."""
    # Every stage section, planned or not (a config dict may not have come through load_config).
    check_sections(cfg)
    stages: dict[str, Stage] = {}
    state = _read_json(layout.state)

    def add(stage: Stage) -> None:
        upstream = [stages[d].handed_on for d in stage.deps]
        stage.fingerprint = fingerprint({"name": stage.name, "settings": stage.settings, "deps": upstream})
        if stage.kind == DATASET:
            stage.content = _built_content(stage, state.get(stage.name, {}))
        stages[stage.name] = stage

    evaluated = _add_datasets(cfg, layout, add)
    encoders = sorted(cfg["encoders"], key=_depth)
    for enc in encoders:
        trained_by = encoder_spec(enc).trained_by
        for name in training_chain(trained_by) if trained_by else ():
            if name not in stages:
                add(_training_stage(name, cfg, layout))
        for ds in evaluated:
            if enc != "id":
                add(_embed_stage(enc, cfg, layout, ds))
            for model in cfg["seqrec"]["models"]:
                if _pairs_with(model, enc, first=enc == encoders[0]):
                    add(_seqrec_stage(enc, model, cfg, layout, ds))
                if enc in cfg["seqrec"]["with_id"] and _trained(model):
                    add(_seqrec_stage(enc, model, cfg, layout, ds, with_id=True))
    return stages


def _add_datasets(cfg: dict, layout: RunLayout, add: Callable) -> list[str | None]:
    """The dataset stages; returns the evaluated datasets (``[None]``: the run's one dataset).

    A multi-dataset run prepares each dataset (``dataset:<name>``), then builds the LLM stages' training
    union (``dataset``) from the training datasets, less the evaluation datasets' held-out events."""
    if not is_multi(cfg):
        inputs = input_signature(cfg["dataset"]["input"], layout.input_hashes)
        add(
            Stage(
                DATASET,
                DATASET,
                [],
                {**cfg["dataset"], "inputs": inputs},
                layout.dataset,
                actions.run_prepare,
            )
        )
        return [None]
    mix = cfg["mix"]
    for name, spec in cfg["datasets"].items():
        if name in mix["train"] or name in mix["evaluate"]:
            inputs = input_signature(spec["input"], layout.input_hashes)
            add(Stage(f"{DATASET}:{name}", DATASET, [], {**spec, "inputs": inputs}, layout.source_dataset(name),
                      actions.run_prepare, extra={"dataset": name}))  # fmt: skip
    deps = [f"{DATASET}:{n}" for n in dict.fromkeys(mix["train"] + mix["evaluate"])]
    settings = {
        "train": mix["train"],
        "held_out_from": mix["evaluate"],
        "weights": mix["weights"],
        "seed": mix["seed"],
    }
    add(Stage(DATASET, DATASET, deps, settings, layout.dataset, actions.run_union))
    return list(mix["evaluate"])


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _built_content(stage: Stage, record: dict) -> str:
    """What a finished dataset stage hands on: the hash of its tables' checksums ('' while it is not built
    as planned, or when its manifest records none). So a new setting whose default leaves the tables as
    they were, or an evaluation dataset that removes nothing from a training union, re-runs only the
    cheap dataset stage, not the training stages downstream. ``record``: the stage's pipeline.json entry."""
    if record.get("fingerprint") != stage.fingerprint or record.get("status") != "done":
        return ""
    manifest = _read_json(stage.output / "manifest.json")
    tables = manifest.get("tables")
    return fingerprint({"tables": tables}) if tables else ""


def _depth(encoder: str) -> int:
    """How far down the training chain an encoder's vectors come from (id first, then off-the-shelf)."""
    spec = encoder_spec(encoder)
    if spec.trained_by is None:
        return -2 if spec.name == "id" else -1
    return TRAINING_STAGES.index(spec.trained_by)


def _training_stage(name: str, cfg: dict, layout: RunLayout) -> Stage:
    deps = [DATASET] + ([UPSTREAM[name]] if UPSTREAM[name] else [])
    # Built once: fingerprinted here, handed to the stage when it runs. The resolved settings, not the
    # preset's name: editing a preset re-runs the stages it feeds.
    config = training_stage_module(name).build_config(cfg["preset"], **stage_settings(name, cfg))
    if config.select_by == "sasrec":  # its probe trains the recommender as this run trains its rows
        config = replace(config, probe_seqrec=dict(cfg["seqrec"]["options"]))
    settings = {"config": identity(config)}
    if name == "csft":
        settings["model"] = cfg["model"]
    return Stage(name, TRAINING, deps, settings, layout.training(name), actions.run_training,
                 extra={"config": config}, every_process=True)  # fmt: skip


def _on(name: str, ds: str | None) -> str:
    """A per-dataset stage's name: ``name@dataset`` in a multi-dataset run."""
    return f"{name}@{ds}" if ds else name


def _data_stage(ds: str | None) -> str:
    return f"{DATASET}:{ds}" if ds else DATASET


def _embed_stage(enc: str, cfg: dict, layout: RunLayout, ds: str | None = None) -> Stage:
    spec = encoder_spec(enc)
    settings = {
        "encoder": enc,
        "embed": cfg["embed"],
        "model": cfg["model"] if spec.source == "backbone" else None,
    }
    deps = [_data_stage(ds)] + ([spec.trained_by] if spec.trained_by else [])
    return Stage(_on(f"embed:{enc}", ds), EMBED, deps, settings, layout.embeddings(enc, ds), actions.run_embed,
                 extra={"encoder": enc, "dataset": ds}, every_process=True)  # fmt: skip


def _seqrec_stage(
    enc: str, model: str, cfg: dict, layout: RunLayout, ds: str | None = None, with_id: bool = False
) -> Stage:
    """One encoder × recommender row; ``with_id``: the text+ID row (vectors + trainable ID embeddings)."""
    deps = [_data_stage(ds)] + ([] if enc == "id" else [_on(f"embed:{enc}", ds)])
    s = cfg["seqrec"]
    from llm2rec.seqrec.config import config_from_overrides

    options = {**s["options"], "item_repr": "text+id"} if with_id else s["options"]
    # Checked now (unknown keys, types, choices), not after the LLM stages have run for hours.
    config_from_overrides(model=model, **options).resolved(has_embeddings=enc != "id")
    row = enc + WITH_ID if with_id else enc
    settings = {"model": model, "seeds": s["seeds"], "options": options}
    return Stage(_on(f"seqrec:{row}:{model}", ds), SEQREC, deps, settings, layout.seqrec(row, model, ds),
                 actions.run_seqrec, extra={"encoder": enc, "row": row, "model": model, "options": options,
                                            "dataset": ds})  # fmt: skip


def _trained(model: str) -> bool:
    from llm2rec.seqrec.config import BASELINES

    return model not in BASELINES


def _pairs_with(model: str, encoder: str, first: bool) -> bool:
    """Whether recommender ``model`` runs on ``encoder``'s vectors: knn needs vectors (not id); pop and
    random ignore them, so they run once, with the first encoder."""
    from llm2rec.seqrec.config import BASELINES, NEEDS_VECTORS

    if model in NEEDS_VECTORS:
        return encoder != "id"
    return first or model not in BASELINES


def input_signature(inputs: list, cache_path: Path) -> list:
    """Content identity of the input files: relative name, size and sha256.

    Content, not mtime: a copied or re-mounted data directory must not invalidate a day of training. The
    hashes are cached in ``cache_path`` by (path, size, mtime), so unchanged inputs are hashed once.
    """
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    sig, fresh = [], {}
    for raw in inputs:
        root = Path(raw)
        if not root.exists():  # said now, before a run directory is made for a run that cannot start
            raise FileNotFoundError(f"input not found: {root}")
        files = sorted(q for q in root.rglob("*") if q.is_file()) if root.is_dir() else [root]
        for q in (f for f in files if f.exists()):
            stat = q.stat()
            key = f"{q.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
            fresh[key] = cache.get(key) or sha256_file(q)
            name = q.relative_to(root).as_posix() if root.is_dir() else q.name
            sig.append([name, stat.st_size, fresh[key]])
    if fresh != cache and cache_path.parent.is_dir():
        atomic_write_json(cache_path, fresh)
    return sig
