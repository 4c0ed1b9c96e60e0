"""A stage's identity: what decides the model it produces (its settings, the model it starts from, the
dataset), recorded with its output and its training state, so that a finished output or an interrupted
state is reused only by a run with the same identity, never silently kept under another.

The model a stage starts from is identified by content, not by the path it was given: a stage output by
its record (which a retrained stage rewrites), a plain model directory by its ``config.json`` and the
names and sizes of its files, a ``.gguf`` file by its size, a hub id or a built-in name by itself. A run
directory moved or copied to another machine keeps its identities.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from llm2rec.train.config import identity


def model_identity(model: str | Path) -> str:
    path = Path(model)
    if not path.exists():
        return str(model)  # a hub id or a built-in name
    if path.is_file():
        return f"file:{path.name}:{path.stat().st_size}"
    from llm2rec.train import TRAINING_STAGES

    records = sorted(p for p in path.glob("*.json") if p.stem in TRAINING_STAGES)
    digest = hashlib.sha256()
    if records:  # a published stage: its record says how it was made, and a retrained one differs
        for record in records:
            digest.update(record.name.encode() + b"\0" + record.read_bytes())
        return f"stage:{digest.hexdigest()[:16]}"
    if (path / "config.json").is_file():
        digest.update((path / "config.json").read_bytes())
    for entry in sorted(p for p in path.iterdir() if p.is_file()):
        digest.update(f"{entry.name}:{entry.stat().st_size}\n".encode())
    return f"dir:{digest.hexdigest()[:16]}"


def stage_identity(model: str | Path, dataset_checksum: str, config) -> dict:
    return {"model": model_identity(model), "dataset": dataset_checksum, "config": _plain(identity(config))}


def recorded_identity(record: dict) -> dict:
    """The identity a stage record holds; records written before identities existed give what they can
    (their dataset checksum and settings, not the model they started from)."""
    if isinstance(record.get("identity"), dict):
        return record["identity"]
    from llm2rec.train.config import COSMETIC

    settings = {k: v for k, v in (record.get("config") or {}).items() if k not in COSMETIC}
    return {"dataset": record.get("dataset_checksum"), "config": settings}


def differences(recorded: dict, wanted: dict) -> list[str]:
    """The keys in which two identities differ (settings by their own name); only the keys ``recorded``
    holds are compared."""
    keys = []
    for key in ("model", "dataset"):
        if key in recorded and recorded[key] != wanted.get(key):
            keys.append(key)
    old, new = recorded.get("config") or {}, wanted.get("config") or {}
    for key in sorted(set(old) | set(new)):
        if key in new and key not in old and new[key] is None:
            continue  # a setting added after the record was written, at its "unset" default
        if _plain(old.get(key)) != _plain(new.get(key)):
            keys.append(key)
    return keys


def _plain(value):
    """``value`` as JSON gives it back (tuples become lists), so a record and a config compare equal."""
    return json.loads(json.dumps(value, default=str))
