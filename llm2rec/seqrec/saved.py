"""Saved recommenders, read back: each trained seed's weights in ``seed-<s>/model.safetensors`` (written by
:func:`llm2rec.seqrec.models.save_model`) beside the results
dir's ``config.json`` (every setting, the dataset's checksum, the embeddings file's sha256), so a result can
be re-scored, or the model used, without training again (``llm2rec seqrec --evaluate-only DIR``)."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from llm2rec.errors import ConfigError, DataFormatError
from llm2rec.seqrec.models import MODEL_FILE

log = logging.getLogger(__name__)


def load_models(results_dir: str | Path, dataset_dir: str | Path | None = None, device: str = "cpu"):
    """``(config, data, {seed dir name: model})`` of a results dir, every model rebuilt and loaded.

    The dataset is the one recorded in ``config.json`` unless ``dataset_dir`` is given; its checksum must
    match, as must the embeddings file's sha256 (a model is only meaningful on the data it was trained on).
    """
    import torch
    from safetensors.torch import load_file

    from llm2rec.data.dataset import Dataset
    from llm2rec.data.vectors import load_item_vectors
    from llm2rec.io import sha256_file
    from llm2rec.seqrec.config import SeqRecConfig
    from llm2rec.seqrec.data import SeqRecData
    from llm2rec.seqrec.record import recorded_path
    from llm2rec.seqrec.registry import build_model
    from llm2rec.typed import validated

    results_dir = Path(results_dir)
    record = _read_record(results_dir)
    cfg = validated(SeqRecConfig, record["config"], where="config")
    dataset = Dataset.load(dataset_dir or recorded_path(results_dir, record["dataset"]["path"]))
    if record["dataset"]["checksum"] not in dataset.known_checksums:
        raise DataFormatError(
            dataset.root, f"is not the dataset {results_dir} was trained on (checksum differs)"
        )
    vectors = None
    if record.get("embeddings"):
        path = recorded_path(results_dir, record["embeddings"]["path"])
        if sha256_file(path) != record["embeddings"]["sha256"]:
            raise DataFormatError(path, f"is not the embeddings file {results_dir} was trained with")
        vectors = load_item_vectors(path, dataset.num_items, dataset.known_checksums)
    data = SeqRecData.from_dataset(dataset, supervise=cfg.supervise, windows=cfg.windows)
    models = {}
    for file in sorted(results_dir.glob(f"seed-*/{MODEL_FILE}")):
        model = build_model(cfg, data, vectors)
        model.load_state_dict(load_file(file))
        models[file.parent.name] = model.to(torch.device(device)).eval()
    if not models:
        raise ConfigError(
            f"{results_dir} holds no saved model (seed-*/{MODEL_FILE}); was it trained by a baseline?"
        )
    return cfg, data, models


def evaluate_saved(results_dir: str | Path, dataset_dir: str | Path | None = None) -> dict:
    """Re-score every saved model of a results dir on the valid and test splits: ``{seed dir: {valid, test,
    test_groups}}`` (the test metrics per target group too, :mod:`llm2rec.seqrec.groups`)."""
    from llm2rec.seqrec.groups import group_metrics, target_groups
    from llm2rec.seqrec.metrics import metrics_from_ranks
    from llm2rec.seqrec.trainer import rank_targets

    cfg, data, models = load_models(results_dir, dataset_dir)
    t = cfg.train
    groups = target_groups(data.item_counts, data.test, data.cold_items)
    out = {}
    for name, model in models.items():
        ranks = {split: rank_targets(model, getattr(data, split), t.exclude_history, t.eval_batch_size,
                                     t.memory_budget) for split in ("valid", "test")}  # fmt: skip
        out[name] = {split: metrics_from_ranks(r, t.ks) for split, r in ranks.items()}
        out[name]["test_groups"] = group_metrics(ranks["test"], groups, t.ks)
    return out


def _read_record(results_dir: Path) -> dict:
    path = results_dir / "config.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path} not found: is {results_dir} a `llm2rec seqrec` results directory?"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataFormatError(path, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict) or "config" not in record or "dataset" not in record:
        raise DataFormatError(path, "is not a seqrec results record (no config / dataset)")
    return record
