"""Item embeddings: the :class:`Encoder` API (texts in, vectors out), extraction of a dataset's items into
an item-vector file, and the registry of item representations a run compares.

Submodules load lazily, so ``import llm2rec.embed.registry`` stays free of torch.
"""

from __future__ import annotations

__all__ = ["Encoder", "embed_items"]


def __getattr__(name: str):
    if name == "Encoder":
        from llm2rec.embed.encoder import Encoder

        return Encoder
    if name == "embed_items":
        from llm2rec.embed.extract import embed_items

        return embed_items
    raise AttributeError(f"module 'llm2rec.embed' has no attribute {name!r}")
