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

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llm2rec.seqrec.chunked_loss import full_softmax_loss
from llm2rec.seqrec.item_encoder import ItemEncoder


class SequentialRecommender(nn.Module):
    """Subclasses implement :meth:`sequence_outputs`; inputs are right-padded histories and their lengths."""

    def __init__(self, item_encoder: ItemEncoder):
        super().__init__()
        self.item_encoder = item_encoder

    def sequence_outputs(self, item_embs: torch.Tensor) -> torch.Tensor:
        """(B, L, hidden) embedded right-padded sequences → (B, L, hidden) the state after each position
        (causal: position p has read items 0..p only)."""
        raise NotImplementedError

    def encode_sequence(self, item_embs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, hidden) embedded histories → (B, hidden) state after the last real item."""
        return last_position(self.sequence_outputs(item_embs), lengths)

    def user_states(self, histories: torch.Tensor, lengths: torch.Tensor, table: torch.Tensor | None = None):
        table = self.item_encoder.table() if table is None else table
        return self.encode_sequence(table[histories], lengths)

    def forward(self, histories: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits (B, N) over items 1..N: padding is not a class (column j is item j+1)."""
        table = self.item_encoder.table()
        states = self.user_states(histories, lengths, table)
        return states @ table[1:].T

    def training_loss(
        self, inputs: torch.Tensor, targets: torch.Tensor, memory_budget: int | None = None
    ) -> torch.Tensor:
        """Mean cross-entropy over every supervised position of whole-sequence rows (``targets`` > 0; see
        :class:`llm2rec.seqrec.data.TrainRows`) against every item: the item table (and a text adapter) is
        computed once; the logits in item chunks when they exceed ``memory_budget`` bytes (exact:
        :mod:`llm2rec.seqrec.chunked_loss`)."""
        table = self.item_encoder.table()
        states = self.sequence_outputs(table[inputs])
        supervised = targets > 0
        return full_softmax_loss(states[supervised], table[1:], targets[supervised] - 1, memory_budget)


class FastDropout(nn.Module):
    """``nn.Dropout`` with a cheaper mask on the CPU: one 16-bit random integer per element compared with a
    threshold (keep probability exact to 1/65536) instead of a Bernoulli draw, which took a fifth of a
    small recommender's training time there. On other devices it is ``F.dropout``."""

    def __init__(self, p: float):
        super().__init__()
        self.p = float(p)
        self._threshold = -32768 + round(self.p * 65536)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":
            return F.dropout(x, self.p, True)
        keep = torch.randint(-32768, 32768, x.shape, dtype=torch.int16) >= self._threshold
        return x * keep.to(x.dtype).mul_(1.0 / (1.0 - self.p))


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
        self.input_dropout = FastDropout(dropout)
        block = nn.TransformerEncoderLayer(
            hidden, heads, ffn, dropout, activation="gelu", batch_first=True, layer_norm_eps=1e-12
        )
        # The blocks' parameters (and their initialisation) are nn.TransformerEncoderLayer's; the forward pass
        # is _post_ln_block. Right padding + causal attention: a real position never sees the padding after
        # it, so no key mask is needed.
        self.blocks = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        for (
            layer
        ) in self.blocks.layers:  # same rates, cheaper masks (no parameters: the state dict is unchanged)
            layer.dropout, layer.dropout1, layer.dropout2 = (FastDropout(dropout) for _ in range(3))

    def sequence_outputs(self, item_embs: torch.Tensor) -> torch.Tensor:
        x = self._embed(item_embs)
        for block in self.blocks.layers:
            x = _post_ln_block(block, x)
        return x

    def encode_sequence(self, item_embs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The state after the last real item: the same numbers as ``sequence_outputs`` read there, but
        the last block computes that one position only (its keys and values still see every item)."""
        x = self._embed(item_embs)
        *early, last = self.blocks.layers
        for block in early:
            x = _post_ln_block(block, x)
        return _post_ln_block(last, x, query=lengths - 1)

    def _embed(self, item_embs: torch.Tensor) -> torch.Tensor:
        width = item_embs.shape[1]
        x = item_embs + self.positions.weight[:width].unsqueeze(0)
        return self.input_dropout(self.input_norm(x))


def _post_ln_block(
    block: nn.TransformerEncoderLayer, x: torch.Tensor, query: torch.Tensor | None = None
) -> torch.Tensor:
    """``block(x)`` with a causal mask, the same computation as ``nn.TransformerEncoderLayer`` (post-LN,
    dropout on the attention weights, after attention and inside and after the feed-forward), written with
    ``scaled_dot_product_attention`` on the block's own weights: a few fused kernels instead of the many small
    ops of the generic path, which dominate the time of a model this small on a CPU."""
    attn = block.self_attn
    batch, width, hidden = x.shape
    heads = attn.num_heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(batch, width, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
    drop = attn.dropout if block.training else 0.0
    if query is not None:  # one position per row (B,): its query against the keys up to it
        rows = torch.arange(batch, device=x.device)
        q = q[rows, :, query].unsqueeze(2)
        visible = torch.arange(width, device=x.device)[None, :] <= query[:, None]
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=visible[:, None, None, :], dropout_p=drop)
        x = x[rows, query].unsqueeze(1)
        width = 1
    else:
        a = F.scaled_dot_product_attention(q, k, v, dropout_p=drop, is_causal=True)
    a = attn.out_proj(a.transpose(1, 2).reshape(batch, width, hidden))
    x = block.norm1(x + block.dropout1(a))
    ff = block.linear2(block.dropout(block.activation(block.linear1(x))))
    out = block.norm2(x + block.dropout2(ff))
    return out.squeeze(1) if query is not None else out


class GRU4Rec(SequentialRecommender):
    def __init__(self, item_encoder: ItemEncoder, hidden: int = 128, layers: int = 2, dropout: float = 0.3):
        super().__init__(item_encoder)
        self.embedding_dropout = FastDropout(dropout)
        self.gru = nn.GRU(hidden, hidden, num_layers=layers, bias=False, batch_first=True)
        for name, weight in self.gru.named_parameters():
            if name.startswith("weight"):
                nn.init.xavier_uniform_(weight)  # RecBole's GRU4Rec init

    def sequence_outputs(self, item_embs: torch.Tensor) -> torch.Tensor:
        # Right padding: the output at a real position has not yet read any padding, so no packing is needed.
        outputs, _ = self.gru(self.embedding_dropout(item_embs))
        return outputs


# A trained recommender's file in its seed dir (read back by llm2rec.seqrec.saved).
MODEL_FILE = "model.safetensors"


def save_model(model: nn.Module, seed_dir: Path) -> Path:
    """The model's state (weights and the frozen item vectors) as safetensors, written atomically."""
    from safetensors.torch import save

    from llm2rec.io import atomic_write_bytes

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(seed_dir) / MODEL_FILE
    atomic_write_bytes(path, save(state))
    return path
