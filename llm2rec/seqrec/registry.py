"""The recommenders llm2rec trains, by name (as :mod:`llm2rec.embed.registry` holds the encoders): how
each is built from its settings, its item encoder and the data. Baselines are not here: they train
nothing (:mod:`llm2rec.seqrec.baselines`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from llm2rec.seqrec.config import SeqRecConfig


@dataclass(frozen=True)
class RecommenderSpec:
    build: Callable  # (config, item encoder, data) -> SequentialRecommender
    id_init: str  # how its ID embeddings start (the paper's code: normal for SASRec, xavier for GRU4Rec)


def _sasrec(cfg: SeqRecConfig, encoder, data):
    from llm2rec.seqrec.models import SASRec

    return SASRec(encoder, data.max_history, cfg.hidden, cfg.layers, cfg.heads, cfg.ffn, cfg.dropout)


def _gru4rec(cfg: SeqRecConfig, encoder, data):
    from llm2rec.seqrec.models import GRU4Rec

    return GRU4Rec(encoder, cfg.hidden, cfg.layers, cfg.dropout)


RECOMMENDERS: dict[str, RecommenderSpec] = {
    "sasrec": RecommenderSpec(_sasrec, "normal"),
    "gru4rec": RecommenderSpec(_gru4rec, "xavier"),
}


def build_model(cfg: SeqRecConfig, data, vectors: np.ndarray | None):
    """The recommender ``cfg.model`` names (a resolved config), its items behind ``cfg.item_repr``."""
    from llm2rec.seqrec.item_encoder import ItemEncoder

    spec = RECOMMENDERS[cfg.model]
    encoder = ItemEncoder(data.num_items, cfg.hidden, cfg.item_repr, vectors, adapter=cfg.adapter,
                          finetune_vectors=cfg.finetune_vectors, id_init=spec.id_init)  # fmt: skip
    return spec.build(cfg, encoder, data)
