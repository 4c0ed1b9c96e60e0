"""``run_seqrec``: train and evaluate one downstream setting over several seeds and write its results dir.

Layout of ``out_dir``::

    config.json              every setting, the dataset checksum, the embeddings file and its sha256
    results.json             {"metrics": {"recall@10": {"mean", "std", "per_seed"}, ...}, "valid_metrics": ...}
    results.csv, results.md  the same test metrics as a table
    seed-<s>/metrics.json    test and best-validation metrics, best epoch, timings, the training curve
    seed-<s>/curve.png       loss and validation metric per epoch

The popularity and knn baselines are deterministic: they run once, in ``seed-none/``.

With ``resume=True`` a seed already finished under the same settings, data and vectors (in ``out_dir`` or in
``<out_dir>.work``, where seeds land as they finish) is reused instead of retrained, so adding a seed or
re-running after an interruption only trains what is missing.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from llm2rec.data.vectors import load_item_vectors, rank_below_two
from llm2rec.errors import ConfigError
from llm2rec.io import atomic_dir, atomic_write_json, work_dir_for
from llm2rec.outdir import check_output, write_marker
from llm2rec.seqrec.baselines import last_item_knn_vectors, popularity_vectors, random_vectors
from llm2rec.seqrec.config import (
    BASELINES,
    DEFAULT_SEEDS,
    DETERMINISTIC,
    NEEDS_VECTORS,
    SeqRecConfig,
    config_from_overrides,
)
from llm2rec.seqrec.data import SeqRecData
from llm2rec.seqrec.groups import aggregate_groups, group_metrics, repeat_last_ranks, target_groups
from llm2rec.seqrec.item_encoder import normalise_vectors
from llm2rec.seqrec.metrics import full_ranking_ranks, metrics_from_ranks
from llm2rec.seqrec.models import MODEL_FILE, save_model
from llm2rec.seqrec.plots import plot_curve
from llm2rec.seqrec.record import check_same_settings, finished_seeds
from llm2rec.seqrec.record import config_record as config_record_of
from llm2rec.seqrec.registry import build_model
from llm2rec.seqrec.results import aggregate, write_results
from llm2rec.seqrec.trainer import fit, rank_targets

log = logging.getLogger(__name__)

SEQREC_KIND = "seqrec"  # what the output marker of a results dir says (llm2rec.outdir)
SEQREC_LEGACY = ("results.json",)  # results dirs written before markers existed (a model dir has config.json)


def run_seqrec(
    dataset_dir: str | Path,
    model: str | None = None,
    embeddings: str | Path | None = None,
    seeds=DEFAULT_SEEDS,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    **overrides,
) -> dict:
    """Train/evaluate ``model`` once per seed on a prepared dataset; return (and write) ``results.json``.

    ``model`` and ``overrides`` are :class:`SeqRecConfig`/:class:`TrainConfig` fields (unset: their
    defaults there), e.g. ``epochs=50, eval_every=5,
    item_repr="text+id", exclude_history=True``. Without ``out_dir`` nothing is written. ``resume`` reuses
    seeds finished earlier with identical settings (see the module docstring) and replaces ``out_dir``.
    """
    from llm2rec.data.dataset import Dataset

    named = {"model": model} if model is not None else {}  # unset: the config's default
    cfg = config_from_overrides(**named, **overrides).resolved(embeddings is not None)
    if out_dir is not None:  # before any work: never replace an input or a directory that is not ours
        check_output(out_dir, SEQREC_KIND, overwrite=overwrite or resume, legacy=SEQREC_LEGACY,
                     inputs=[p for p in (dataset_dir, embeddings) if p is not None])  # fmt: skip
    dataset = Dataset.load(dataset_dir)
    data = SeqRecData.from_dataset(dataset, supervise=cfg.supervise, windows=cfg.windows)
    embeddings, vectors = _item_vectors(cfg, dataset, embeddings)
    device = torch.device(cfg.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    seeds = [None] if cfg.model in DETERMINISTIC else [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("give at least one seed")
    config_record = config_record_of(cfg, dataset, embeddings, seeds, device, out_dir)
    if out_dir is None:
        return _run_all(cfg, data, vectors, seeds, device, None, config_record)
    return _run_into(Path(out_dir), cfg, data, vectors, seeds, device, config_record, overwrite, resume)


def _item_vectors(cfg: SeqRecConfig, dataset, embeddings) -> tuple:
    """(embeddings path or None, the checked and preprocessed vectors or None)."""
    uses_vectors = cfg.model in NEEDS_VECTORS or (cfg.model not in BASELINES and cfg.item_repr != "id")
    if embeddings is not None and not uses_vectors:
        log.warning(
            "ignoring --embeddings: %s with item representation %s does not use them",
            cfg.model,
            cfg.item_repr,
        )
        return None, None
    if embeddings is None:
        return None, None
    vectors = load_item_vectors(embeddings, dataset.num_items, dataset.known_checksums)
    if rank_below_two(vectors[1:]):
        log.warning("%s: every item vector is a multiple of one vector (rank < 2): text rows can "
                    "hardly tell items apart", embeddings)  # fmt: skip
    return embeddings, normalise_vectors(vectors, cfg.vector_norm)


def _run_into(out_dir: Path, cfg, data, vectors, seeds, device, config_record, overwrite, resume) -> dict:
    """Run every seed and write ``out_dir`` atomically; with ``resume``, reuse finished seeds."""
    finished, work = {}, None
    if resume and not overwrite:
        check_same_settings(out_dir, config_record)
    if resume:
        finished = finished_seeds(out_dir, config_record)
        work = work_dir_for(out_dir)
        # Start the work dir afresh, so it never holds seeds made under another config.
        if work.exists():
            check_output(work, SEQREC_KIND, overwrite=True, legacy=SEQREC_LEGACY)
            shutil.rmtree(work)
        atomic_write_json(work / "config.json", config_record)
        write_marker(work, SEQREC_KIND, files=("config.json", "seed-*/"))  # seeds land as they finish
    with atomic_dir(out_dir, overwrite=overwrite or resume, kind=SEQREC_KIND, legacy=SEQREC_LEGACY) as tmp:
        atomic_write_json(tmp / "config.json", config_record)
        results = _run_all(cfg, data, vectors, seeds, device, tmp, config_record, finished, work)
    if work is not None:
        shutil.rmtree(work, ignore_errors=True)
    return results


def _run_all(
    cfg, data, vectors, seeds, device, out: Path | None, config_record: dict, finished=None, work=None
) -> dict:
    runs = []
    for seed in seeds:
        name = _seed_dir_name(seed)
        model_dir = None if out is None else (work if work is not None else out) / name
        if finished and name in finished:
            log.info("seqrec %s seed %s: reusing the finished run", cfg.model, seed)
            run, model_dir = finished[name]
        else:
            log.info("seqrec %s seed %s", cfg.model, seed)
            run = run_one_seed(cfg, data, vectors, seed, device, model_dir=model_dir)
        if work is not None:
            atomic_write_json(work / name / "metrics.json", run)
        runs.append(run)
        if out is not None:
            seed_dir = out / name
            atomic_write_json(seed_dir / "metrics.json", run)
            if model_dir is not None and model_dir != seed_dir and (model_dir / MODEL_FILE).is_file():
                shutil.copy2(model_dir / MODEL_FILE, seed_dir / MODEL_FILE)
            if run["curve"] and cfg.train.plots:
                title = f"{cfg.model} ({cfg.item_repr}), seed {seed}"
                plot_curve(run["curve"], seed_dir / "curve.png", cfg.train.valid_metric, title)
    results = {
        "split": "test",
        "model": cfg.model,
        "item_repr": cfg.item_repr if cfg.model not in BASELINES else None,
        "seeds": [s if s is not None else "none" for s in seeds],
        "std": cfg.std,
        "metrics": aggregate([r["test"] for r in runs], cfg.std),
        "valid_metrics": aggregate([r["valid"] for r in runs], cfg.std),
        **aggregate_groups(runs, cfg.std),
        "best_epochs": [r["best_epoch"] for r in runs],
        "dataset": config_record["dataset"],
        "embeddings": config_record["embeddings"],
    }
    if out is not None:
        write_results(out, results, _label(cfg))
    return results


def run_one_seed(
    cfg: SeqRecConfig, data: SeqRecData, vectors, seed: int | None, device, model_dir: Path | None = None
) -> dict:
    """Train and test one seed; with ``model_dir``, the trained model is saved there (``model.safetensors``:
    every weight, the frozen item vectors included, so the results dir re-scores it on its own)."""
    if cfg.model in BASELINES:
        return _run_baseline(cfg, data, vectors, seed)
    seed_everything(seed)
    model = build_model(cfg, data, vectors).to(device)
    result = fit(model, data, cfg.train, seed)
    if model_dir is not None:
        save_model(model, model_dir)
    tick = time.perf_counter()
    t = cfg.train
    ranks = rank_targets(model, data.test, t.exclude_history, t.eval_batch_size, t.memory_budget)
    return {
        "seed": seed,
        "test": metrics_from_ranks(ranks, t.ks),
        "test_groups": _groups(ranks, data, t.ks),
        "valid": result.best_valid,
        "best_epoch": result.best_epoch,
        "epochs_run": result.epochs_run,
        "train_seconds": result.train_seconds,
        "test_eval_seconds": time.perf_counter() - tick,
        "num_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "curve": result.curve,
    }


def _run_baseline(cfg: SeqRecConfig, data: SeqRecData, vectors, seed: int | None) -> dict:
    out = {"seed": seed, "best_epoch": None, "epochs_run": 0, "train_seconds": 0.0, "curve": []}
    for split in ("valid", "test"):
        examples = getattr(data, split)
        if cfg.model == "pop":
            users, items = popularity_vectors(data.item_counts, len(examples))
        elif cfg.model == "knn":
            users, items = last_item_knn_vectors(vectors, examples.histories, examples.lengths)
        elif cfg.model == "random":
            users, items = random_vectors(len(examples), data.num_items, seed + (split == "test"))
        exclude = examples.seen if cfg.train.exclude_history or cfg.model == "knn" else None
        if cfg.model == "last":
            ranks = repeat_last_ranks(examples, data.num_items, cfg.train.exclude_history)
        else:
            ranks = full_ranking_ranks(users, items, examples.targets, exclude, cfg.train.memory_budget)
        out[split] = metrics_from_ranks(ranks, cfg.train.ks)
    out["test_groups"] = _groups(ranks, data, cfg.train.ks)
    return out


def _groups(ranks, data: SeqRecData, ks) -> dict:
    """The test metrics per target group (popularity, repeat/new, warm/cold): llm2rec.seqrec.groups."""
    return group_metrics(ranks, target_groups(data.item_counts, data.test, data.cold_items), ks)


def _seed_dir_name(seed: int | None) -> str:
    return f"seed-{seed if seed is not None else 'none'}"


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _label(cfg: SeqRecConfig) -> str:
    if cfg.model in BASELINES:
        return cfg.model
    return f"{cfg.model} ({cfg.item_repr})"
