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

import json
import logging
import platform
import shutil
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch

from llm2rec.data.vectors import load_item_vectors, rank_below_two
from llm2rec.errors import ConfigError
from llm2rec.io import atomic_dir, atomic_write_json, sha256_file, work_dir_for
from llm2rec.outdir import check_output, write_marker
from llm2rec.seqrec.baselines import (
    BASELINES,
    DETERMINISTIC,
    NEEDS_VECTORS,
    last_item_knn_vectors,
    popularity_vectors,
    random_vectors,
)
from llm2rec.seqrec.data import SUPERVISE_CHOICES, WINDOW_CHOICES, SeqRecData
from llm2rec.seqrec.groups import aggregate_groups, group_metrics, repeat_last_ranks, target_groups
from llm2rec.seqrec.item_encoder import ItemEncoder, normalise_vectors
from llm2rec.seqrec.metrics import full_ranking_ranks, metric_keys, metrics_from_ranks
from llm2rec.seqrec.models import MODEL_FILE, save_model
from llm2rec.seqrec.plots import plot_curve
from llm2rec.seqrec.results import STD_KINDS, aggregate, write_results
from llm2rec.seqrec.trainer import TrainConfig, fit, rank_targets
from llm2rec.typed import validated

log = logging.getLogger(__name__)

MODELS = ("sasrec", "gru4rec", *BASELINES)
DEFAULT_SEEDS = (2024, 2025, 2026)
DEFAULT_LR = {"sasrec": 1e-3, "gru4rec": 1e-4}  # the paper's

SEQREC_KIND = "seqrec"  # what the output marker of a results dir says (llm2rec.outdir)
SEQREC_LEGACY = ("results.json",)  # results dirs written before markers existed (a model dir has config.json)


@dataclass
class SeqRecConfig:
    model: str = "sasrec"
    item_repr: str | None = None  # id | text | text+id; None = "text" with embeddings, else "id"
    adapter: str = "linear"
    finetune_vectors: bool = False
    vector_norm: str = "none"
    hidden: int = 128
    layers: int = 2
    heads: int = 2
    ffn: int = 256
    dropout: float = 0.3
    supervise: str = "all"
    windows: str = "exact"  # exact | chunked: how long training sequences become rows (seqrec.data)
    lr: float | None = None  # None = the model's paper default
    std: str = "population"
    device: str | None = None  # None = cuda when available
    train: TrainConfig = field(default_factory=TrainConfig)

    def resolved(self, has_embeddings: bool) -> SeqRecConfig:
        item_repr = self.item_repr or ("text" if has_embeddings else "id")
        lr = self.lr if self.lr is not None else DEFAULT_LR.get(self.model, 1e-3)
        cfg = replace(self, item_repr=item_repr, lr=lr, train=replace(self.train, lr=lr))
        cfg.validate(has_embeddings)
        return cfg

    def validate(self, has_embeddings: bool) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"--model must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.windows not in WINDOW_CHOICES:
            raise ConfigError(f"windows must be one of {', '.join(WINDOW_CHOICES)}, not {self.windows!r}")
        if self.supervise not in SUPERVISE_CHOICES:
            raise ConfigError(f"--supervise must be one of {', '.join(SUPERVISE_CHOICES)}")
        if self.std not in STD_KINDS:
            raise ConfigError(f"--std must be one of {', '.join(STD_KINDS)}")
        if self.item_repr != "id" and not has_embeddings and self.model not in BASELINES:
            raise ConfigError(f"item representation {self.item_repr!r} needs --embeddings FILE.npy")
        if self.model in NEEDS_VECTORS and not has_embeddings:
            raise ConfigError(f"--model {self.model} needs --embeddings FILE.npy")
        if self.train.valid_metric not in metric_keys(self.train.ks):
            raise ConfigError(
                f"valid metric {self.train.valid_metric!r} is not one of {metric_keys(self.train.ks)}"
            )
        if self.train.epochs < 1 or self.train.eval_every < 1 or self.train.patience < 1:
            raise ConfigError("epochs, eval_every and patience must all be ≥ 1")


def config_from_overrides(**overrides) -> SeqRecConfig:
    """A config from flat keyword overrides: any :class:`SeqRecConfig` or :class:`TrainConfig` field."""
    top = {f.name for f in fields(SeqRecConfig)} - {"train"}
    train_keys = {f.name for f in fields(TrainConfig)}
    unknown = set(overrides) - top - train_keys
    if unknown:
        raise ConfigError(f"unknown seqrec setting(s): {', '.join(sorted(unknown))}")
    # ``lr`` is a top-level field (its default depends on the model); ``resolved`` copies it into ``train``.
    # Every value is checked against its field's type (a bad one is a one-line error, before training).
    train_values = {k: v for k, v in overrides.items() if k in train_keys and k not in top}
    train = validated(TrainConfig, train_values, where="seqrec")
    return validated(
        SeqRecConfig, {**{k: v for k, v in overrides.items() if k in top}, "train": train}, "seqrec"
    )


def run_seqrec(
    dataset_dir: str | Path,
    model: str = "sasrec",
    embeddings: str | Path | None = None,
    seeds=DEFAULT_SEEDS,
    out_dir: str | Path | None = None,
    overwrite: bool = False,
    resume: bool = False,
    **overrides,
) -> dict:
    """Train/evaluate ``model`` once per seed on a prepared dataset; return (and write) ``results.json``.

    ``overrides`` are :class:`SeqRecConfig`/:class:`TrainConfig` fields, e.g. ``epochs=50, eval_every=5,
    item_repr="text+id", exclude_history=True``. Without ``out_dir`` nothing is written. ``resume`` reuses
    seeds finished earlier with identical settings (see the module docstring) and replaces ``out_dir``.
    """
    from llm2rec.data.dataset import Dataset

    cfg = config_from_overrides(model=model, **overrides).resolved(embeddings is not None)
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
    config_record = _config_record(cfg, dataset, embeddings, seeds, device)
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
        _check_same_settings(out_dir, config_record)
    if resume:
        finished = _finished_seeds(out_dir, config_record)
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


def build_model(cfg: SeqRecConfig, data: SeqRecData, vectors: np.ndarray | None):
    from llm2rec.seqrec.models import GRU4Rec, SASRec

    encoder = ItemEncoder(
        data.num_items,
        cfg.hidden,
        cfg.item_repr,
        vectors,
        adapter=cfg.adapter,
        finetune_vectors=cfg.finetune_vectors,
        id_init="normal" if cfg.model == "sasrec" else "xavier",
    )
    if cfg.model == "sasrec":
        return SASRec(encoder, data.max_history, cfg.hidden, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout)
    return GRU4Rec(encoder, cfg.hidden, cfg.layers, cfg.dropout)


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


def _reuse_key(record: dict) -> dict:
    """What must match for a finished seed to be reused: every setting but the progress bar, the data and
    the vectors (by checksum, not path) and the device."""
    config = dict(record["config"])
    config["train"] = {k: v for k, v in config["train"].items() if k not in ("progress", "plots")}
    embeddings = record.get("embeddings") or {}
    return {"config": config, "dataset": record["dataset"]["checksum"],
            "embeddings": embeddings.get("sha256"), "device": record["device"]}  # fmt: skip


def _finished_seeds(out_dir: Path, record: dict) -> dict[str, tuple[dict, Path]]:
    """Per-seed results already on disk (in ``out_dir`` or its work dir) made with the same settings, with
    the folder each was found in (its saved model, if any, is copied on)."""
    key = json.loads(json.dumps(_reuse_key(record)))  # tuples → lists, as read back from disk
    found = {}
    for folder in (out_dir, work_dir_for(out_dir)):
        try:
            old = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if _reuse_key(old) != key:
            continue
        for path in sorted(folder.glob("seed-*/metrics.json")):
            found[path.parent.name] = (json.loads(path.read_text(encoding="utf-8")), path.parent)
    return found


def _check_same_settings(out_dir: Path, record: dict) -> None:
    """``resume`` continues a results dir only under the same settings, data and vectors (seeds may be
    added); one made under others is replaced only with ``overwrite``."""
    try:
        old = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
        old_key = _reuse_key(old)
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing (readable) to continue: the output checks decide whether it may be replaced
    new_key = json.loads(json.dumps(_reuse_key(record)))
    differ = [k for k in ("dataset", "embeddings", "device") if old_key[k] != new_key[k]]
    old_cfg, new_cfg = _flat(old_key["config"]), _flat(new_key["config"])
    differ += sorted(k for k in set(old_cfg) | set(new_cfg) if old_cfg.get(k) != new_cfg.get(k))
    if differ:
        raise ConfigError(
            f"--out {out_dir} holds results made with another {', '.join(differ)}; pass --overwrite to "
            "replace them, or choose another --out"
        )


def _flat(config: dict) -> dict:
    train = config.get("train") or {}
    return {
        **{k: v for k, v in config.items() if k != "train"},
        **{f"train.{k}": v for k, v in train.items()},
    }


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)


def _label(cfg: SeqRecConfig) -> str:
    if cfg.model in BASELINES:
        return cfg.model
    return f"{cfg.model} ({cfg.item_repr})"


def _config_record(cfg: SeqRecConfig, dataset, embeddings, seeds, device) -> dict:
    return {
        "config": asdict(cfg),
        "seeds": [s if s is not None else "none" for s in seeds],
        "dataset": {"path": str(dataset.root), "checksum": dataset.checksum, "num_items": dataset.num_items},
        "embeddings": None
        if embeddings is None
        else {"path": str(embeddings), "sha256": sha256_file(embeddings)},
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }
