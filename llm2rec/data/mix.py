"""The training union of a multi-dataset run: the training parts of several prepared datasets written as
one prepared dataset, which the LLM stages read exactly as they read a single one.

* **Items**: every item of a kept training event, keyed ``<dataset>:<key>``, with a ``source`` column. Two
  datasets that share an item key (the same ASIN in two categories) keep two items: ids never mix.
* **Users**: ``<dataset>:<user key>``, one union user per dataset user.
* **Training parts**: each training dataset's, less every *held-out event*: a (user key, item key) pair that
  is a valid or test interaction of any evaluation dataset. So no held-out interaction enters training,
  also when the same user and item occur in another dataset of the mix.
* **Valid rows**: each training dataset's valid targets after its kept training part (for checkpoint
  choice on valid, as in a single-dataset run); a target that is not an item of the union is dropped.
  The test table is empty: the union is never evaluated.
* **CSFT pairs**: every training window of the kept training parts. With ``weights``, each dataset's share
  of the pairs is its weight's share of the total (seeded resampling; the number of pairs is kept), so a
  small domain does not drown in a large one. MNTP and contrastive titles: each union item once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from llm2rec.data.dataset import Dataset
from llm2rec.data.protocol import Prepared, _csft_table, _examples, write_tables
from llm2rec.errors import ConfigError

SOURCE_FORMAT = "mix"


def item_keys(dataset: Dataset) -> np.ndarray:
    """``keys[i]`` is item i's source key (``keys[0]`` is the padding's empty key)."""
    keys = np.full(dataset.num_items + 1, "", dtype=object)
    keys[dataset.items["item_id"].to_numpy()] = dataset.items["key"].astype(str).to_numpy()
    return keys


def held_out_events(dataset: Dataset) -> set[tuple[str, str]]:
    """Every valid or test interaction of ``dataset`` as a (user key, item key) pair."""
    keys = item_keys(dataset)
    seqs = dataset.sequences
    return {
        (str(user), keys[i])
        for user, items, n in zip(seqs["user_key"], seqs["items"], seqs["n_train"], strict=True)
        for i in items[n:]
    }


def build_training_union(
    train: Mapping[str, Dataset],
    evaluate: Sequence[Dataset],
    out: str | Path,
    *,
    weights: Mapping[str, float] | None = None,
    seed: int = 0,
    overwrite: bool = True,
) -> Dataset:
    """Write the union of ``train``'s training parts (less ``evaluate``'s held-out events) to ``out``."""
    if not train:
        raise ConfigError("a training union needs at least one training dataset")
    histories = {d.max_history for d in train.values()}
    if len(histories) > 1:
        raise ConfigError(
            f"the training datasets were prepared with different max_history {sorted(histories)}"
        )
    held = set().union(*(held_out_events(d) for d in evaluate))
    parts = {name: _kept_parts(name, d, held) for name, d in train.items()}
    prepared, per_source = _union(parts, histories.pop())
    if weights is not None:
        prepared.csft = _reweighted(prepared, parts, weights, seed)
    source = _source_of_rows(prepared)
    for name, part in parts.items():
        per_source[name].update(
            held_out_events_removed=part.removed, csft_pairs_used=int((source == name).sum())
        )
    fields = {
        "source": {
            "format": SOURCE_FORMAT,
            "has_time": True,
            "datasets": {
                name: {"checksum": d.checksum, "source": d.manifest["source"].get("format")}
                for name, d in train.items()
            },
        },  # fmt: skip
        "settings": {"max_history": next(iter(train.values())).max_history, "weights": weights, "seed": seed},
        "item_id_order": "training datasets in the order given, each in its own item-id order",
        "mix": per_source,
        "dropped": {"held_out_events": sum(p.removed for p in parts.values())},
    }
    return write_tables(prepared, out, fields, overwrite=overwrite)


class _Part:
    """One training dataset's kept events: per user, the training items and their timestamps, and the
    valid items (as source item ids)."""

    def __init__(self, name: str, dataset: Dataset):
        self.name, self.dataset = name, dataset
        self.users: list[str] = []
        self.train: list[np.ndarray] = []
        self.times: list[np.ndarray] = []
        self.valid: list[np.ndarray] = []
        self.removed = 0


def _kept_parts(name: str, dataset: Dataset, held: set) -> _Part:
    part, keys, seqs = _Part(name, dataset), item_keys(dataset), dataset.sequences
    for user, items, times, n, nv in zip(seqs["user_key"], seqs["items"], seqs["timestamps"], seqs["n_train"],
                                         seqs["n_valid"], strict=True):  # fmt: skip
        user = str(user)
        keep = np.array([(user, keys[i]) not in held for i in items[:n]], dtype=bool)
        part.removed += int((~keep).sum())
        part.users.append(user)
        part.train.append(np.asarray(items[:n])[keep])
        part.times.append(np.asarray(times[:n])[keep])
        part.valid.append(np.asarray(items[n : n + nv]))
    return part


def _union(parts: dict[str, _Part], max_history: int) -> tuple[Prepared, dict]:
    """The union's tables: items renumbered dataset by dataset, users ``<dataset>:<key>``."""
    item_frames, id_maps, next_id, per_source = [], {}, 1, {}
    for name, part in parts.items():
        used = np.unique(np.concatenate([np.zeros(0, np.int64), *part.train]))
        mapping = np.zeros(part.dataset.num_items + 1, dtype=np.int64)
        mapping[used] = np.arange(next_id, next_id + len(used))
        id_maps[name], next_id = mapping, next_id + len(used)
        items = part.dataset.items.set_index("item_id").loc[used, ["key", "title"]].reset_index(drop=True)
        items.insert(0, "item_id", mapping[used].astype(np.int32))
        items["key"] = name + ":" + items["key"].astype(str)
        items["source"] = name
        item_frames.append(items)
        per_source[name] = {"items": len(used), "users": len(part.users)}
    users, seq_items, seq_times, n_train, n_valid = [], [], [], [], []
    for name, part in parts.items():
        mapping = id_maps[name]
        for user, train, times, valid in zip(part.users, part.train, part.times, part.valid, strict=True):
            valid = mapping[valid][mapping[valid] > 0]  # a target no training event has: not in the union
            users.append(f"{name}:{user}")
            seq_items.append(np.concatenate([mapping[train], valid]).astype(np.int32))
            # Valid items have no timestamp of their own here: they follow the last training event.
            last = times[-1] if len(times) else 0
            seq_times.append(np.concatenate([times, np.full(len(valid), last)]).astype(np.int64))
            n_train.append(len(train))
            n_valid.append(len(valid))
    sequences = pd.DataFrame({
        "user": np.arange(len(users), dtype=np.int32), "user_key": users, "items": seq_items,
        "timestamps": seq_times, "n_train": np.asarray(n_train, np.int32), "n_valid": np.asarray(n_valid, np.int32),
    })  # fmt: skip
    items = pd.concat(item_frames, ignore_index=True)
    examples = _examples_of(sequences, max_history)
    titles = np.concatenate([[""], items["title"].to_numpy(dtype=object)])
    return Prepared(items, sequences, examples, _csft_table(examples["train"], titles)), per_source


def _examples_of(sequences: pd.DataFrame, max_history: int) -> dict:
    """Train rows (every training position with history), valid rows, and an empty test table."""
    sizes = sequences["items"].map(len).to_numpy()
    flat = np.concatenate([np.zeros(0, np.int64), *sequences["items"]]).astype(np.int64)
    user_of = np.repeat(np.arange(len(sizes)), sizes)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
    offset = np.arange(len(flat)) - starts[user_of]
    n_train = sequences["n_train"].to_numpy()[user_of]
    examples = {}
    for name, where in (("train", offset < n_train), ("valid", offset >= n_train), ("test", offset < 0)):
        examples[name], _ = _examples(flat, user_of, starts, np.flatnonzero(where), max_history)
    return examples


def _source_of_rows(prepared: Prepared) -> np.ndarray:
    """The training dataset of each CSFT row (from its user's ``<dataset>:`` key)."""
    source = prepared.sequences["user_key"].str.split(":", n=1).str[0].to_numpy()
    return source[prepared.csft.column("user").to_numpy()]


def _reweighted(prepared: Prepared, parts: dict, weights: Mapping[str, float], seed: int):
    """CSFT rows resampled so that dataset s holds ``weights[s] / sum(weights)`` of them (same total)."""
    unknown = set(weights) - set(parts)
    if unknown or set(parts) - set(weights):
        raise ConfigError(
            f"mix weights must name every training dataset {sorted(parts)}, got {sorted(weights)}"
        )
    if any(w < 0 for w in weights.values()) or not sum(weights.values()):
        raise ConfigError(f"mix weights must be ≥ 0 with a positive sum, got {dict(weights)}")
    source, total = _source_of_rows(prepared), prepared.csft.num_rows
    rng, chosen = np.random.default_rng(seed), []
    for name in parts:
        rows = np.flatnonzero(source == name)
        want = round(total * weights[name] / sum(weights.values()))
        if not len(rows) or not want:
            continue
        copies, rest = divmod(want, len(rows))
        chosen += [np.tile(rows, copies), rng.choice(rows, size=rest, replace=False)]
    return prepared.csft.take(np.sort(np.concatenate(chosen)))
