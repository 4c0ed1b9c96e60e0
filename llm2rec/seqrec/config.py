"""The settings of a downstream recommender run, declared once (every other place reads them from here).

:class:`TrainConfig` is what the training loop reads; :class:`SeqRecConfig` adds the model, the item
representation and the run (seeds aside). The CLI's flags, a run config's ``seqrec.options``, the
valid-split probe of the LLM stages and ``Recommender.load`` all build these through
:func:`config_from_overrides`, so a default lives here and nowhere else, and a value derived from
another one (``ffn`` = 2 × ``hidden``) is derived here, once (:meth:`SeqRecConfig.resolved`).
This module imports nothing heavy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

from llm2rec.errors import ConfigError
from llm2rec.typed import validated

DEFAULT_SEEDS = (2024, 2025, 2026)  # the paper's
DEFAULT_LR = {"sasrec": 1e-3, "gru4rec": 1e-4}  # the paper's
DEFAULT_KS = (5, 10, 20)
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes for one block of float32 scores (llm2rec.seqrec.metrics)
BASELINES = ("pop", "random", "knn", "last")  # last: repeat the last history item (llm2rec.seqrec.groups)
DETERMINISTIC = ("pop", "knn", "last")  # run once, not once per seed
NEEDS_VECTORS = ("knn",)
TRAINED = ("sasrec", "gru4rec")  # llm2rec.seqrec.registry
MODELS = (*TRAINED, *BASELINES)
STD_KINDS = ("population", "sample")
SUPERVISE_CHOICES = ("all", "last")
WINDOW_CHOICES = ("exact", "chunked")


@dataclass
class TrainConfig:
    epochs: int = 500
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    eval_every: int = 1
    patience: int = 10  # epochs since the best validation score before stopping
    valid_metric: str = "recall@20"
    ks: tuple[int, ...] = DEFAULT_KS
    exclude_history: bool = False
    eval_batch_size: int = 2048
    # bytes for one block of float32 scores: evaluation ranks users in blocks of it, training computes the
    # softmax over the catalogue in item chunks of it once the logits would exceed it (seqrec.chunked_loss)
    memory_budget: int = DEFAULT_MEMORY_BUDGET
    # Batches of rows sorted by width within chunks of this many batches (less padding computed; larger
    # = less padding, less random batch composition). docs/results.md measures 8 against 64.
    length_group: int = 8
    progress: bool = True
    plots: bool = True  # seed-<s>/curve.png (matplotlib: about 0.6 s a run)


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
    ffn: int | None = None  # None = 2 × hidden (SASRec's feed-forward size)
    dropout: float = 0.3
    supervise: str = "all"
    windows: str = "exact"  # exact | chunked: how long training sequences become rows (seqrec.data)
    lr: float | None = None  # None = the model's paper default
    std: str = "population"
    device: str | None = None  # None = cuda when available
    train: TrainConfig = field(default_factory=TrainConfig)

    def resolved(self, has_embeddings: bool) -> SeqRecConfig:
        """Every "unset" filled in from the settings it depends on, and the whole checked."""
        item_repr = self.item_repr or ("text" if has_embeddings else "id")
        lr = self.lr if self.lr is not None else DEFAULT_LR.get(self.model, 1e-3)
        ffn = self.ffn if self.ffn is not None else 2 * self.hidden
        cfg = replace(self, item_repr=item_repr, lr=lr, ffn=ffn, train=replace(self.train, lr=lr))
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
        keys = [f"{name}@{k}" for k in self.train.ks for name in ("recall", "ndcg", "mrr")]
        if self.train.valid_metric not in keys:
            raise ConfigError(f"valid metric {self.train.valid_metric!r} is not one of {keys}")
        if self.train.epochs < 1 or self.train.eval_every < 1 or self.train.patience < 1:
            raise ConfigError("epochs, eval_every and patience must all be ≥ 1")


def setting_names() -> tuple[set[str], set[str]]:
    """The names :func:`config_from_overrides` takes: (top-level fields, training-loop fields)."""
    return {f.name for f in fields(SeqRecConfig)} - {"train"}, {f.name for f in fields(TrainConfig)}


def config_from_overrides(**overrides) -> SeqRecConfig:
    """A config from flat keyword overrides: any :class:`SeqRecConfig` or :class:`TrainConfig` field."""
    top, train_keys = setting_names()
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
