"""A results directory's record (``config.json``) and what it is reused under.

The record holds every setting, the dataset (checksum, and its path *relative to the results directory*,
so a run moved or copied elsewhere still finds it), the vectors (sha256 and relative path) and the
device. ``resume`` reuses a finished seed only when the settings, data, vectors and device are the same
(:func:`reuse_key`), and continues a results directory only under them (:func:`check_same_settings`).
"""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

from llm2rec.errors import ConfigError
from llm2rec.io import portable_path, sha256_file, work_dir_for
from llm2rec.seqrec.config import SeqRecConfig


def config_record(cfg: SeqRecConfig, dataset, embeddings, seeds, device, out_dir: Path | None) -> dict:
    import torch

    return {
        "config": asdict(cfg),
        "seeds": [s if s is not None else "none" for s in seeds],
        "dataset": {
            "path": stored_path(dataset.root, out_dir),
            "checksum": dataset.checksum,
            "num_items": dataset.num_items,
        },  # fmt: skip
        "embeddings": None
        if embeddings is None
        else {"path": stored_path(embeddings, out_dir), "sha256": sha256_file(embeddings)},
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }


def stored_path(path: str | Path, out_dir: Path | None) -> str:
    """``path`` as a results directory records it: relative to that directory (absolute without one)."""
    return str(Path(path).absolute()) if out_dir is None else portable_path(path, out_dir)


def recorded_path(results_dir: str | Path, path: str) -> Path:
    """A path a results directory recorded, found from where that directory is now (records written
    before paths were relative hold absolute ones: used as they are)."""
    path = Path(path)
    return path if path.is_absolute() else Path(results_dir) / path


def reuse_key(record: dict) -> dict:
    """What must match for a finished seed to be reused: every setting but the progress bar, the data and
    the vectors (by checksum, not path) and the device."""
    config = dict(record["config"])
    config["train"] = {k: v for k, v in config["train"].items() if k not in ("progress", "plots")}
    embeddings = record.get("embeddings") or {}
    return {"config": config, "dataset": record["dataset"]["checksum"],
            "embeddings": embeddings.get("sha256"), "device": record["device"]}  # fmt: skip


def finished_seeds(out_dir: Path, record: dict) -> dict[str, tuple[dict, Path]]:
    """Per-seed results already on disk (in ``out_dir`` or its work dir) made with the same settings, with
    the folder each was found in (its saved model, if any, is copied on)."""
    key = json.loads(json.dumps(reuse_key(record)))  # tuples → lists, as read back from disk
    found = {}
    for folder in (out_dir, work_dir_for(out_dir)):
        try:
            old = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if reuse_key(old) != key:
            continue
        for path in sorted(folder.glob("seed-*/metrics.json")):
            found[path.parent.name] = (json.loads(path.read_text(encoding="utf-8")), path.parent)
    return found


def check_same_settings(out_dir: Path, record: dict) -> None:
    """``resume`` continues a results dir only under the same settings, data and vectors (seeds may be
    added); one made under others is replaced only with ``overwrite``."""
    try:
        old_key = reuse_key(json.loads((out_dir / "config.json").read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError):
        return  # nothing (readable) to continue: the output checks decide whether it may be replaced
    new_key = json.loads(json.dumps(reuse_key(record)))
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
