"""The sequential-recommendation protocol: from a :class:`RawLog` to a prepared :class:`Dataset` directory.

Order of operations (each step's removals are counted in the manifest):

1. clean titles; drop items whose title is empty and their interactions;
2. optional minimum rating;
3. keep the earliest of duplicate (user, item) events;
4. iterative k-core on users and items (``kcore=0`` disables);
5. sort each user's events by timestamp, ties broken by input order (stable);
6. split: leave-one-out (valid target = second-to-last, test target = last; users need ≥ 3 events), a global
   temporal split at two cut-offs, or the split the source shipped;
7. renumber items 1..N by first appearance in the time-sorted log (ties: user key, then position), users 0..U-1
   by sorted user key;
8. build examples with the last ``max_history`` items before each target, and CSFT pairs from the training
   part only.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from llm2rec.data.dataset import Dataset
from llm2rec.data.schema import RawLog
from llm2rec.data.writer import write_tables
from llm2rec.errors import ConfigError
from llm2rec.io import sha256_file

log = logging.getLogger(__name__)

# Amazon Reviews 2023's published global cut-offs (ms): train < T1 <= valid < T2 <= test.
AMAZON2023_CUTOFFS = (1628643414042, 1658002729837)
SPLIT_CHOICES = ("loo", "temporal", "shipped")
_SPLIT_RANK = {"train": 0, "valid": 1, "test": 2}


@dataclass
class ProtocolSettings:
    kcore: int = 5
    max_history: int = 10
    split: str = "loo"
    cutoffs: tuple[int, int] = AMAZON2023_CUTOFFS
    min_rating: float | None = None
    min_sequence_length: int = 3
    dedup: bool = True
    """Keep only the earliest of repeated (user, item) events; off reproduces data shipped with repeats."""
    sample_users: int | None = None
    """Keep a seeded random sample of this many users (before k-core), e.g. to match a paper's sizes."""
    sample_seed: int = 0
    cold_items: float | None = None
    """Hold out this fraction of items (seeded by ``sample_seed``) from every training part: cold-start."""
    cold_after: int | None = None
    """Or hold out the items first seen at or after this time (ms)."""
    cold_titles_known: bool = False
    """Let MNTP and the contrastive stage see cold items' titles (a catalogue known before its sales)."""

    def validate(self) -> None:
        if self.split not in SPLIT_CHOICES:
            raise ConfigError(f"--split must be one of {', '.join(SPLIT_CHOICES)}, not {self.split!r}")
        if self.kcore < 0:
            raise ConfigError(f"--kcore must be ≥ 0, not {self.kcore}")
        if self.max_history < 1:
            raise ConfigError(f"--max-history must be ≥ 1, not {self.max_history}")
        if self.cold_items is not None and not 0 < self.cold_items < 1:
            raise ConfigError(f"--cold-items is a fraction of the items, in (0, 1), not {self.cold_items}")
        if self.cold_items is not None and self.cold_after is not None:
            raise ConfigError("choose cold items by --cold-items or by --cold-after, not both")
        if self.sample_users is not None and self.sample_users < 1:
            raise ConfigError(f"--sample-users must be ≥ 1, not {self.sample_users}")
        if self.cutoffs[0] > self.cutoffs[1]:
            raise ConfigError(f"temporal cut-offs must be increasing, got {self.cutoffs}")


@dataclass
class Prepared:
    """The protocol's in-memory result, before it is written."""

    items: pd.DataFrame
    sequences: pd.DataFrame
    examples: dict[str, pa.Table]
    csft: pa.Table
    dropped: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- filtering


def _clean_items(raw: RawLog, dropped: dict) -> pd.DataFrame:
    from llm2rec.data.text import MAX_TITLE_CHARS, cap_title, clean_text

    items = raw.items.drop_duplicates("item", keep="first").copy()
    cleaned = [clean_text(t) for t in items["title"]]
    dropped["titles_truncated"] = sum(len(t) > MAX_TITLE_CHARS for t in cleaned)
    items["title"] = [cap_title(t) for t in cleaned]
    usable = items["title"].str.len() > 0
    dropped["items_without_title"] = int((~usable).sum())
    return items[usable].reset_index(drop=True)


def _filter_interactions(
    raw: RawLog, items: pd.DataFrame, s: ProtocolSettings, dropped: dict
) -> pd.DataFrame:
    df = raw.interactions.reset_index(drop=True).copy()
    df["pos"] = np.arange(len(df), dtype=np.int64)  # input order = the stable tie-break
    if raw.presplit is not None:
        df["split"] = raw.presplit.reset_index(drop=True).map(_SPLIT_RANK).to_numpy()
    has_title = df["item"].isin(items["item"])
    dropped["interactions_without_title"] = int((~has_title).sum())
    df = df[has_title]
    if s.min_rating is not None:
        low = df["rating"] < s.min_rating  # NaN ratings are kept: the source had none
        dropped["below_min_rating"] = int(low.sum())
        df = df[~low]
    df = df.sort_values(["user", "timestamp", "pos"], kind="stable")
    dup = df.duplicated(["user", "item"], keep="first") if s.dedup else pd.Series(False, index=df.index)
    dropped["duplicate_events"] = int(dup.sum())
    return df[~dup]


def sample_users(df: pd.DataFrame, n: int, seed: int, dropped: dict) -> pd.DataFrame:
    """The events of ``n`` users drawn without replacement (seeded; all users when there are fewer)."""
    users = np.sort(df["user"].unique())
    if n < len(users):
        chosen = np.random.default_rng(seed).choice(users, size=n, replace=False)
        df = df[df["user"].isin(chosen)]
    dropped["user_sample"] = {"asked": n, "seed": seed, "users_before": len(users),
                              "users_dropped": max(0, len(users) - n)}  # fmt: skip
    return df


def kcore_filter(df: pd.DataFrame, k: int) -> pd.DataFrame:
    """Iteratively drop users and items with fewer than ``k`` events until both conditions hold."""
    if k <= 1:
        return df
    while True:
        user_n = df.groupby("user", sort=False)["item"].transform("size")
        item_n = df.groupby("item", sort=False)["user"].transform("size")
        keep = (user_n >= k) & (item_n >= k)
        if keep.all():
            return df
        df = df[keep]


# --------------------------------------------------------------------------- splitting


def _split_counts(df: pd.DataFrame, s: ProtocolSettings, has_presplit: bool) -> pd.DataFrame:
    """Per user: n_train and n_valid (test = the rest), with rows already in chronological order."""
    g = df.groupby("user", sort=False)
    n = g.size()
    if s.split == "loo":
        return pd.DataFrame({"n_train": n - 2, "n_valid": 1}).astype("int64")
    if s.split == "temporal":
        t1, t2 = s.cutoffs
        ts = df["timestamp"]
        return pd.DataFrame(
            {
                "n_train": (ts < t1).groupby(df["user"], sort=False).sum(),
                "n_valid": ((ts >= t1) & (ts < t2)).groupby(df["user"], sort=False).sum(),
            }
        ).astype("int64")
    if not has_presplit:
        raise ConfigError("--split shipped needs a source that ships its split (and use_shipped_split)")
    rank = df["split"]
    if (rank.groupby(df["user"], sort=False).diff().fillna(0) < 0).any():
        raise ConfigError("the shipped split is not chronological within users: use --split loo or temporal")
    return pd.DataFrame(
        {
            "n_train": (rank == 0).groupby(df["user"], sort=False).sum(),
            "n_valid": (rank == 1).groupby(df["user"], sort=False).sum(),
        }
    ).astype("int64")


# --------------------------------------------------------------------------- examples


def _window_lists(
    flat: np.ndarray, starts: np.ndarray, targets: np.ndarray, max_history: int
) -> pa.ListArray:
    """For each target index g into ``flat`` (within a user starting at ``starts``), the list
    ``flat[max(start, g - H):g]`` — built with array arithmetic, not a Python loop."""
    lo = np.maximum(starts, targets - max_history)
    lengths = targets - lo
    offsets = np.zeros(len(targets) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    idx = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1], lengths) + np.repeat(lo, lengths)
    return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat[idx]))


def _examples(flat, user_of, starts, positions, max_history) -> tuple[pa.Table, int]:
    """Examples whose target is at ``positions`` (global indices); those without any history are dropped."""
    keep = positions > starts[user_of[positions]]
    positions = positions[keep]
    hist = _window_lists(flat, starts[user_of[positions]], positions, max_history)
    table = pa.table(
        {
            "user": pa.array(user_of[positions].astype(np.int32)),
            "history": hist,
            "target": pa.array(flat[positions].astype(np.int32)),
        }
    )
    return table, int((~keep).sum())


def _csft_table(train: pa.Table, titles: np.ndarray) -> pa.Table:
    hist = train.column("history").combine_chunks()
    hist_ids = hist.values.to_numpy(zero_copy_only=False)
    hist_titles = pa.ListArray.from_arrays(hist.offsets, pa.array(titles[hist_ids], type=pa.string()))
    target_titles = pa.array(titles[train.column("target").to_numpy()], type=pa.string())
    return train.append_column("history_titles", hist_titles).append_column("target_title", target_titles)


# --------------------------------------------------------------------------- main entry


def apply_protocol(raw: RawLog, s: ProtocolSettings) -> Prepared:
    s.validate()
    if s.split == "temporal" and not raw.has_time:
        raise ConfigError(
            f"{raw.format} input has no timestamps: a temporal split needs them (use --split loo)"
        )
    dropped: dict = {}
    items = _clean_items(raw, dropped)
    df = _filter_interactions(raw, items, s, dropped)
    if s.sample_users is not None:
        df = sample_users(df, s.sample_users, s.sample_seed, dropped)
    before = len(df), df["user"].nunique(), df["item"].nunique()
    df = kcore_filter(df, s.kcore)
    dropped["kcore"] = {
        "interactions": before[0] - len(df),
        "users": before[1] - df["user"].nunique(),
        "items": before[2] - df["item"].nunique(),
    }
    if s.split == "loo":
        n = df.groupby("user", sort=False)["item"].transform("size")
        short = n < s.min_sequence_length
        dropped["short_users"] = int(df.loc[short, "user"].nunique())
        df = df[~short]
    if df.empty:
        raise ConfigError(
            "no interactions are left after filtering: lower --kcore or check the input"
            + raw.bad_lines.why_empty()
        )
    return _build(df, items, s, raw.presplit is not None, dropped)


def _build(df: pd.DataFrame, items: pd.DataFrame, s, has_presplit: bool, dropped: dict) -> Prepared:
    df = df.sort_values(["user", "timestamp", "pos"], kind="stable").reset_index(drop=True)
    counts = _split_counts(df, s, has_presplit)
    cold = set()
    if s.cold_items is not None or s.cold_after is not None:
        df, counts, cold = _hold_out_cold(df, counts, s, dropped)
    # Item ids: first appearance in time order (ties: user key, then input position).
    order = df.sort_values(["timestamp", "user", "pos"], kind="stable")["item"]
    keys = pd.unique(order)
    item_id = pd.Series(np.arange(1, len(keys) + 1, dtype=np.int64), index=keys)
    df["iid"] = item_id.loc[df["item"]].to_numpy()

    user_keys = np.sort(df["user"].unique())
    uid = pd.Series(np.arange(len(user_keys)), index=user_keys)
    df["uid"] = uid.loc[df["user"]].to_numpy()  # df is sorted by user key, so uid is non-decreasing

    flat = df["iid"].to_numpy()
    user_of = df["uid"].to_numpy()
    sizes = np.bincount(user_of, minlength=len(user_keys))
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    counts = counts.loc[user_keys]
    n_train = counts["n_train"].to_numpy()
    n_valid = counts["n_valid"].to_numpy()
    offset = np.arange(len(flat)) - starts[user_of]
    part = np.where(offset < n_train[user_of], 0, np.where(offset < (n_train + n_valid)[user_of], 1, 2))

    examples, dropped["examples_without_history"] = {}, {}
    for rank, name in enumerate(("train", "valid", "test")):
        table, no_hist = _examples(flat, user_of, starts, np.flatnonzero(part == rank), s.max_history)
        examples[name], dropped["examples_without_history"][name] = table, no_hist
    _check_splits_not_empty(examples, s, df["timestamp"])

    items = items.set_index("item").loc[keys].reset_index()
    items.insert(0, "item_id", np.arange(1, len(keys) + 1, dtype=np.int32))
    items = items.rename(columns={"item": "key"})
    if cold:
        items["cold"] = items["key"].isin(cold)
        dropped["cold"]["items_in_catalogue"] = int(items["cold"].sum())
    titles = np.concatenate([[""], items["title"].to_numpy(dtype=object)])

    bounds = np.concatenate([starts, [len(flat)]])
    ts = df["timestamp"].to_numpy()
    sequences = pd.DataFrame(
        {
            "user": np.arange(len(user_keys), dtype=np.int32),
            "user_key": user_keys.astype(str),
            "items": [flat[a:b].astype(np.int32) for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
            "timestamps": [ts[a:b].astype(np.int64) for a, b in zip(bounds[:-1], bounds[1:], strict=True)],
            "n_train": n_train.astype(np.int32),
            "n_valid": n_valid.astype(np.int32),
        }
    )
    return Prepared(items, sequences, examples, _csft_table(examples["train"], titles), dropped)


def _hold_out_cold(df: pd.DataFrame, counts: pd.DataFrame, s, dropped: dict):
    """Choose the cold items (a seeded fraction, or those first seen at or after ``cold_after``) and remove
    their events from every training part; valid and test events stay. Returns (df, counts, cold keys)."""
    first_seen = df.groupby("item")["timestamp"].min().sort_index()
    if s.cold_after is not None:
        cold = first_seen.index[first_seen.to_numpy() >= s.cold_after]
    else:
        rng = np.random.default_rng(s.sample_seed)
        cold = rng.choice(
            first_seen.index.to_numpy(), size=round(s.cold_items * len(first_seen)), replace=False
        )
    offset = df.groupby("user", sort=False).cumcount().to_numpy()  # df is in time order within users
    in_train = offset < counts["n_train"].reindex(df["user"]).to_numpy()
    drop = df["item"].isin(cold).to_numpy() & in_train
    removed = pd.Series(drop.astype(np.int64)).groupby(df["user"].to_numpy()).sum()
    counts = counts.copy()
    counts["n_train"] -= removed.reindex(counts.index, fill_value=0).to_numpy()
    dropped["cold"] = {"chosen_items": len(cold), "training_events_removed": int(drop.sum())}
    return df[~drop].reset_index(drop=True), counts, set(cold)


def _check_splits_not_empty(examples: dict, s: ProtocolSettings, timestamps: pd.Series) -> None:
    """A split with no example would silently give 0 / 0 / 0 metrics and empty exports: refuse it."""
    counts = {name: table.num_rows for name, table in examples.items()}
    if counts["valid"] and counts["test"]:
        if not counts["train"]:
            log.warning(
                "no training example (every training part is a single item): recommenders cannot train"
            )
        return
    said = ", ".join(f"{name} {n:,}" for name, n in counts.items())
    if s.split == "temporal":
        span = f"{_ms_date(int(timestamps.min()))} .. {_ms_date(int(timestamps.max()))}"
        cuts = " and ".join(f"{c} ({_ms_date(c)})" for c in s.cutoffs)
        raise ConfigError(
            f"--split temporal with cut-offs {cuts} leaves {said} examples; the data spans {span}: "
            "choose cut-offs inside it (--cutoffs T1 T2, in ms)"
        )
    raise ConfigError(f"--split {s.split} leaves {said} examples: valid and test need at least one each")


def _ms_date(ms: int) -> str:
    import datetime

    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).date().isoformat()  # noqa: UP017


def write_dataset(
    prepared: Prepared,
    raw: RawLog,
    s: ProtocolSettings,
    out: str | Path,
    *,
    overwrite=False,
    extra: dict | None = None,
) -> Dataset:
    """Write the tables and manifest into ``out`` atomically (all or nothing)."""
    source = {
        "format": raw.format,
        "has_time": raw.has_time,
        "shipped_split_used": s.split == "shipped",
        "files": [_file_entry(p) for p in raw.source_files],
        "notes": raw.notes,
    }
    fields = {
        "source": source,
        "settings": {**asdict(s), "cutoffs": list(s.cutoffs)},
        "item_id_order": "first appearance in the time-sorted log (ties: user key, then input order)",
        "dropped": {"bad_lines": raw.bad_lines.to_dict(), **prepared.dropped},
        **(extra or {}),
    }
    return write_tables(prepared, out, fields, overwrite=overwrite)


def _file_entry(path: Path) -> dict:
    path = Path(path)
    return {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def prepare(
    raw: RawLog,
    out: str | Path,
    settings: ProtocolSettings | None = None,
    *,
    overwrite=False,
    extra: dict | None = None,
) -> Dataset:
    settings = settings or ProtocolSettings()
    return write_dataset(apply_protocol(raw, settings), raw, settings, out, overwrite=overwrite, extra=extra)
