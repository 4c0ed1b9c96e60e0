"""SASRec (Kang & McAuley 2018) in the LLM2Rec/RecBole setting: learned positions, post-LN Transformer
blocks with GELU, causal self-attention, state read at the last real item.

Like RecBole (whose numbers docs/results.md compares against), item + position embeddings go through a
LayerNorm and dropout before the blocks; the official LLM2Rec code skips that LayerNorm. The blocks are
``torch.nn.TransformerEncoderLayer``, which also drops out inside the feed-forward (RecBole does not);
attention-weight dropout and residual dropout use the same rate, as in the paper's setting (0.3).
"""

from __future__ import annotations

import torch
from torch import nn

from llm2rec.seqrec.item_encoder import ItemEncoder
from llm2rec.seqrec.recommender import SequentialRecommender, last_position


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
