"""Tensors for the downstream recommenders, built from a prepared :class:`~llm2rec.data.dataset.Dataset`.

Histories are right-padded with 0 to ``max_history`` (oldest item first, as in RecBole and the official
LLM2Rec code); ``lengths`` says where each one ends, and models read their output at ``length - 1``.

Training examples come from each user's *training part only* (``Dataset.train_sequences()``):

* ``supervise="all"`` (default): every prefix is one example, i.e. every training item after the first is a
  target, with the ``max_history`` items before it as history. This is what RecBole does with the shipped
  ``*.train.inter`` files (one row per prefix), and what the reference numbers were measured with.
* ``supervise="last"``: only the last training item of each user is a target (one example per user),
  the literal reading of "one prediction per training line" in the official code when its train file
  holds one line per user. See docs/results.md for the measured difference.

The trainer does not feed those examples one per row: :func:`training_rows` packs the same targets into
*whole-sequence rows*. A user's training part of T ≤ ``max_history + 1`` items is one row: with causal
attention (or a GRU) the state after every prefix comes out of one forward pass, and the state after items
0..j-1 is exactly what the example with that history would compute (same items, same positions). A target
further than ``max_history + 1`` into a long sequence gets its own row with its last ``max_history`` items,
supervised at the last position only. The objective (mean cross-entropy over the same targets, with the
same histories) is unchanged; the positions computed fall from rows × ``max_history`` to about the number
of training items (``tests/seqrec/test_data.py`` checks equal losses and gradients).

Validation and test rows are the dataset's ``valid``/``test`` tables as the protocol wrote them. For the
optional history exclusion, a valid row's "seen" items are the user's training part and a test row's are
the training plus validation parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
import torch

from llm2rec.errors import DatasetError
from llm2rec.seqrec.config import SUPERVISE_CHOICES, WINDOW_CHOICES


@dataclass
class Examples:
    """One prediction per row: right-padded ``histories`` (R, L), their ``lengths`` (R,), ``targets`` (R,)."""

    histories: torch.Tensor
    lengths: torch.Tensor
    targets: torch.Tensor
    users: np.ndarray
    seen: tuple[np.ndarray, np.ndarray] | None = None  # CSR (indptr, item ids) for history exclusion

    def __len__(self) -> int:
        return int(self.targets.shape[0])


@dataclass
class TrainRows:
    """Training targets in whole-sequence form (see the module docstring): ``inputs`` (R, L) right-padded
    item ids, ``targets`` (R, L) the item to predict after each position (0 = not supervised), ``widths``
    (R,) the real length of each row, ``n_targets`` (R,) how many positions each row supervises."""

    inputs: torch.Tensor
    targets: torch.Tensor
    widths: torch.Tensor
    n_targets: torch.Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    @property
    def num_targets(self) -> int:
        return int(self.n_targets.sum())


@dataclass
class SeqRecData:
    num_items: int
    max_history: int
    train_rows: TrainRows  # what the trainer reads: the training targets in whole-sequence rows
    valid: Examples
    test: Examples
    item_counts: np.ndarray  # (N+1,) training-part interaction counts, for the popularity baseline
    train_sequences: list[np.ndarray]
    supervise: str = "all"
    cold_items: np.ndarray | None = None  # item ids held out of every training input (prepare --cold-items)

    @cached_property
    def train(self) -> Examples:
        """The same training targets one row per prefix (built on first use only: the trainer does not)."""
        return training_examples(self.train_sequences, self.max_history, self.supervise)

    @classmethod
    def from_dataset(cls, dataset, supervise: str = "all", windows: str = "exact") -> SeqRecData:
        """Read a :class:`Dataset` (anything with its ``train_sequences``, ``split``, ``sequences`` API)."""
        data = cls.from_frames(
            train_sequences=dataset.train_sequences(),
            valid=dataset.split("valid"),
            test=dataset.split("test"),
            sequences=dataset.sequences,
            num_items=dataset.num_items,
            max_history=dataset.max_history,
            supervise=supervise,
            windows=windows,
        )
        cold = getattr(dataset, "cold_items", None)
        data.cold_items = cold if cold is not None and len(cold) else None
        return data

    @classmethod
    def from_frames(
        cls,
        train_sequences: list[np.ndarray],
        valid: pd.DataFrame,
        test: pd.DataFrame,
        sequences: pd.DataFrame,
        num_items: int,
        max_history: int,
        supervise: str = "all",
        windows: str = "exact",
    ) -> SeqRecData:
        if supervise not in SUPERVISE_CHOICES:
            raise ValueError(f"supervise must be one of {SUPERVISE_CHOICES}, not {supervise!r}")
        seen_valid = _seen_items(sequences, include_valid=False)
        seen_test = _seen_items(sequences, include_valid=True)
        data = cls(
            num_items=num_items,
            max_history=max_history,
            train_rows=training_rows(train_sequences, max_history, supervise, windows),
            valid=_split_examples(valid, max_history, seen_valid),
            test=_split_examples(test, max_history, seen_test),
            item_counts=_item_counts(train_sequences, num_items),
            train_sequences=train_sequences,
            supervise=supervise,
        )
        data.check_ids()
        return data

    def check_ids(self) -> None:
        rows = self.train_rows
        splits = {
            "train": (rows.targets[rows.targets > 0], rows.inputs),
            "valid": (self.valid.targets, self.valid.histories),
            "test": (self.test.targets, self.test.histories),
        }
        for name, (targets, histories) in splits.items():
            if len(targets) == 0:
                raise DatasetError(f"the {name} split has no examples")
            top = max(int(targets.max()), int(histories.max()))
            if int(targets.min()) < 1 or top > self.num_items:
                raise DatasetError(f"the {name} split holds item ids outside 1..{self.num_items}")


def pad_right(flat: np.ndarray, starts: np.ndarray, lengths: np.ndarray, width: int) -> torch.Tensor:
    """Rows ``flat[starts[r] : starts[r] + lengths[r]]`` right-padded with 0 to ``width`` (vectorised)."""
    if len(flat) == 0:
        return torch.zeros((len(starts), width), dtype=torch.long)
    cols = np.arange(width)
    index = np.minimum(starts[:, None] + cols[None, :], len(flat) - 1)
    padded = np.where(cols[None, :] < lengths[:, None], flat[index], 0)
    return torch.from_numpy(padded.astype(np.int64))


def training_examples(
    train_sequences: list[np.ndarray], max_history: int, supervise: str = "all"
) -> Examples:
    """Examples from each user's training part; see the module docstring for ``supervise``."""
    seq_lengths = np.array([len(s) for s in train_sequences], dtype=np.int64)
    flat = np.concatenate(train_sequences).astype(np.int64) if len(train_sequences) else np.zeros(0, np.int64)
    user_start = np.concatenate([[0], np.cumsum(seq_lengths)[:-1]]) if len(seq_lengths) else seq_lengths
    user_of_pos = np.repeat(np.arange(len(train_sequences)), seq_lengths)
    offset = np.arange(len(flat)) - np.repeat(user_start, seq_lengths)  # position within the user's sequence
    if supervise == "all":
        target_pos = np.flatnonzero(offset >= 1)
    else:
        last = user_start + seq_lengths - 1
        target_pos = last[seq_lengths >= 2]
    hist_len = np.minimum(offset[target_pos], max_history)
    return Examples(
        histories=pad_right(flat, target_pos - hist_len, hist_len, max_history),
        lengths=torch.from_numpy(hist_len.astype(np.int64)),
        targets=torch.from_numpy(flat[target_pos]),
        users=user_of_pos[target_pos],
    )


def training_rows(
    train_sequences: list[np.ndarray], max_history: int, supervise: str = "all", windows: str = "exact"
) -> TrainRows:
    """The targets of :func:`training_examples` packed into whole-sequence rows.

    ``windows="exact"``: every target keeps the history the row-per-prefix form gives it (its last
    ``max_history`` items). ``windows="chunked"``: a long sequence is cut into consecutive pieces of
    ``max_history + 1`` items overlapping by one, each one row, so a target beyond the first piece sees only
    the earlier items of its piece (a shorter history; every target still predicted once): far fewer
    positions on long sequences, a different objective there (docs/results.md measures it).
    """
    if windows not in WINDOW_CHOICES:
        raise ValueError(f"windows must be one of {WINDOW_CHOICES}, not {windows!r}")
    if windows == "chunked" and supervise == "all":
        return _chunked_rows(train_sequences, max_history)
    h = max_history
    lengths = np.array([len(s) for s in train_sequences], dtype=np.int64)
    flat = np.concatenate(train_sequences).astype(np.int64) if len(train_sequences) else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    if supervise == "all":
        # One row per user: items 0..w-2 in, items 1..w-1 out, w = min(T, H + 1).
        users = np.flatnonzero(lengths >= 2)
        width = np.minimum(lengths[users], h + 1) - 1
        seq_in = pad_right(flat, starts[users], width, h)
        seq_out = pad_right(flat, starts[users] + 1, width, h)
        # One row per target beyond H + 1 items: its last H items in, the target after the last of them.
        long_pos = np.concatenate(
            [starts[u] + np.arange(h + 1, lengths[u]) for u in np.flatnonzero(lengths > h + 1)]
            or [np.zeros(0, np.int64)]
        )
        win_width = np.full(len(long_pos), h, dtype=np.int64)
    else:  # the last training item of each user, with its last H items
        users = np.zeros(0, np.int64)
        width = np.zeros(0, np.int64)
        seq_in = seq_out = torch.zeros((0, h), dtype=torch.long)
        with_target = np.flatnonzero(lengths >= 2)
        long_pos = starts[with_target] + lengths[with_target] - 1
        win_width = np.minimum(lengths[with_target] - 1, h)
    win_in = pad_right(flat, long_pos - win_width, win_width, h)
    win_out = torch.zeros_like(win_in)
    if len(long_pos):
        win_out[torch.arange(len(long_pos)), torch.from_numpy(win_width - 1)] = torch.from_numpy(
            flat[long_pos]
        )
    widths = np.concatenate([width, win_width])
    return TrainRows(
        inputs=torch.cat([seq_in, win_in]),
        targets=torch.cat([seq_out, win_out]),
        widths=torch.from_numpy(widths.astype(np.int64)),
        n_targets=torch.from_numpy(np.concatenate([width, np.ones(len(long_pos), np.int64)])),
    )


def _chunked_rows(train_sequences: list[np.ndarray], max_history: int) -> TrainRows:
    h = max_history
    lengths = np.array([len(s) for s in train_sequences], dtype=np.int64)
    flat = np.concatenate(train_sequences).astype(np.int64) if len(train_sequences) else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    # Piece k of a user: items kH .. kH+H in (the first H of them), out (the last H), cut at the end.
    piece_start, piece_width = [], []
    for u in np.flatnonzero(lengths >= 2):
        k = np.arange(0, lengths[u] - 1, h)
        piece_start.append(starts[u] + k)
        piece_width.append(np.minimum(h, lengths[u] - 1 - k))
    first = np.concatenate(piece_start) if piece_start else np.zeros(0, np.int64)
    width = np.concatenate(piece_width) if piece_width else np.zeros(0, np.int64)
    return TrainRows(
        inputs=pad_right(flat, first, width, h),
        targets=pad_right(flat, first + 1, width, h),
        widths=torch.from_numpy(width.astype(np.int64)),
        n_targets=torch.from_numpy(width.astype(np.int64)),
    )


def split_examples(dataset, split: str) -> Examples:
    """One split's examples (valid or test, with the user's seen items) and nothing else: what a stage's
    probe reads from a dataset that may have no test split (a multi-dataset run's training union)."""
    seen = _seen_items(dataset.sequences, include_valid=split == "test")
    return _split_examples(dataset.split(split), dataset.max_history, seen)


def _split_examples(table: pd.DataFrame, max_history: int, seen_by_user: dict) -> Examples:
    histories = [np.asarray(h, dtype=np.int64)[-max_history:] for h in table["history"]]
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    if len(lengths) and lengths.min() < 1:
        raise DatasetError("an evaluation row has an empty history")
    flat = np.concatenate(histories) if histories else np.zeros(0, np.int64)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
    users = table["user"].to_numpy(dtype=np.int64)
    seen_lists = [seen_by_user.get(int(u), np.zeros(0, np.int64)) for u in users]
    seen_ptr = np.concatenate([[0], np.cumsum([len(s) for s in seen_lists])]).astype(np.int64)
    seen_items = np.concatenate(seen_lists).astype(np.int64) if seen_lists else np.zeros(0, np.int64)
    return Examples(
        histories=pad_right(flat, starts, lengths, max_history),
        lengths=torch.from_numpy(lengths),
        targets=torch.from_numpy(np.array(table["target"], dtype=np.int64)),
        users=users,
        seen=(seen_ptr, seen_items),
    )


def _seen_items(sequences: pd.DataFrame, include_valid: bool) -> dict[int, np.ndarray]:
    out = {}
    for user, items, n_train, n_valid in zip(
        sequences["user"], sequences["items"], sequences["n_train"], sequences["n_valid"], strict=True
    ):
        end = int(n_train) + (int(n_valid) if include_valid else 0)
        out[int(user)] = np.unique(np.asarray(items[:end], dtype=np.int64))
    return out


def _item_counts(train_sequences: list[np.ndarray], num_items: int) -> np.ndarray:
    flat = np.concatenate(train_sequences) if train_sequences else np.zeros(0, np.int64)
    return np.bincount(flat.astype(np.int64), minlength=num_items + 1)[: num_items + 1]
