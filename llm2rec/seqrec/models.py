"""The downstream sequential recommenders: what SASRec and GRU4Rec share (item table in, sequence state
out, logits against every real item), and the two models.

**SASRec** (Kang & McAuley 2018) in the LLM2Rec/RecBole setting: learned positions, post-LN Transformer
blocks with GELU, causal self-attention, state read at the last real item.

Like RecBole (whose numbers docs/results.md compares against), item + position embeddings go through a
LayerNorm and dropout before the blocks; the official LLM2Rec code skips that LayerNorm. The blocks are
``torch.nn.TransformerEncoderLayer``, which also drops out inside the feed-forward (RecBole does not);
attention-weight dropout and residual dropout use the same rate, as in the paper's setting (0.3).

**GRU4Rec** (Hidasi et al. 2016) in the LLM2Rec setting: embedding dropout, a bias-free multi-layer GRU,
state read at the last real item.
"""

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


class SASRec(SequentialRecommender):
    def __init__(
        self,
        item_encoder: ItemEncoder,
        max_history: int,
        hidden: int = 128,
        layers: int = 2,
        heads: int = 2,
        ffn: int = 256,
        dropout: float = 0.3,
    ):
        super().__init__(item_encoder)
        self.positions = nn.Embedding(max_history, hidden)
        nn.init.normal_(self.positions.weight, std=0.02)
        self.input_norm = nn.LayerNorm(hidden, eps=1e-12)
        self.input_dropout = nn.Dropout(dropout)
        block = nn.TransformerEncoderLayer(
            hidden, heads, ffn, dropout, activation="gelu", batch_first=True, layer_norm_eps=1e-12
        )
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        # Right padding + causal attention: a real position never sees the padding after it, so no key mask.
        causal = torch.triu(torch.ones(max_history, max_history, dtype=torch.bool), diagonal=1)
        self.register_buffer("causal_mask", causal, persistent=False)

    def encode_sequence(self, item_embs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        width = item_embs.shape[1]
        x = item_embs + self.positions.weight[:width].unsqueeze(0)
        x = self.input_dropout(self.input_norm(x))
        x = self.blocks(x, mask=self.causal_mask[:width, :width], is_causal=True)
        return last_position(x, lengths)


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
