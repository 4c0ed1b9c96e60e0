"""The part SASRec and GRU4Rec share: item table in, sequence state out, logits against every real item."""

from __future__ import annotations

import torch
from torch import nn

from llm2rec.seqrec.item_encoder import ItemEncoder


class SequentialRecommender(nn.Module):
    """Subclasses implement :meth:`encode_sequence`; inputs are right-padded histories and their lengths."""

    def __init__(self, item_encoder: ItemEncoder):
        super().__init__()
        self.item_encoder = item_encoder

    def encode_sequence(self, item_embs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, hidden) embedded histories → (B, hidden) state after the last real item."""
        raise NotImplementedError

    def user_states(self, histories: torch.Tensor, lengths: torch.Tensor, table: torch.Tensor | None = None):
        table = self.item_encoder.table() if table is None else table
        return self.encode_sequence(table[histories], lengths)

    def forward(self, histories: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (B, N) over items 1..N: padding is not a class (column j is item j+1)."""
        table = self.item_encoder.table()
        states = self.user_states(histories, lengths, table)
        return states @ table[1:].T


def last_position(outputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """``outputs[b, lengths[b] - 1]`` for every row b."""
    return outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths - 1]
