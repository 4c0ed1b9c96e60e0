"""GRU4Rec (Hidasi et al. 2016) in the LLM2Rec setting: embedding dropout, a bias-free multi-layer GRU,
state read at the last real item."""

from __future__ import annotations

import torch
from torch import nn

from llm2rec.seqrec.item_encoder import ItemEncoder
from llm2rec.seqrec.recommender import SequentialRecommender, last_position


class GRU4Rec(SequentialRecommender):
    def __init__(self, item_encoder: ItemEncoder, hidden: int = 128, layers: int = 2, dropout: float = 0.3):
        super().__init__(item_encoder)
        self.embedding_dropout = nn.Dropout(dropout)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, bias=False, batch_first=True)
        for name, weight in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)  # RecBole's GRU4Rec init

    def encode_sequence(self, item_embs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Right padding: the GRU output at length-1 has not yet read any padding, so no packing is needed.
        outputs, _ = self.gru(self.embedding_dropout(item_embs))
        return last_position(outputs, lengths)
