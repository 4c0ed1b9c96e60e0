"""Every item representation ``llm2rec run`` knows, in one list: the paper's Table 3/4 rows that can run here.

Each entry says where its vectors come from (``source``: no vectors for ``id``, a sentence-transformers
model, the raw backbone, or the output of one training stage), how the LLM ones pool and attend at
extraction, and how the report describes the row.
"""

from __future__ import annotations

from dataclasses import dataclass

from llm2rec.errors import ConfigError

NO_VECTORS, SENTENCE_TRANSFORMERS, BACKBONE = "id", "st", "backbone"


@dataclass(frozen=True)
class EncoderSpec:
    name: str
    description: str
    source: str  # id | st | backbone | a training stage (csft, mntp, contrastive, contrastive_pairs)
    model: str | None = None  # st: the model to load
    pooling: str | None = None  # LLM encoders: mean | last
    bidirectional: bool | None = None

    @property
    def trained_by(self) -> str | None:
        """The training stage whose model this row reads, if any."""
        return None if self.source in (NO_VECTORS, SENTENCE_TRANSFORMERS, BACKBONE) else self.source


ENCODERS: tuple[EncoderSpec, ...] = (
    EncoderSpec("id", "trainable ID embeddings (no text)", NO_VECTORS),
    EncoderSpec("minilm", "all-MiniLM-L6-v2 sentence embeddings of the titles", SENTENCE_TRANSFORMERS,
                model="st:all-MiniLM-L6-v2"),
    EncoderSpec("raw-last", "the raw backbone, causal attention, last-token pooling (the paper's 'Causal' row)",
                BACKBONE, pooling="last", bidirectional=False),
    EncoderSpec("raw-mean", "the raw backbone, bidirectional attention, mean pooling (the paper's "
                "'Bidirectional' row)", BACKBONE, pooling="mean", bidirectional=True),
    EncoderSpec("raw-causal-mean", "the raw backbone, causal attention, mean pooling (what the official "
                "code's extraction computes)", BACKBONE, pooling="mean", bidirectional=False),
    EncoderSpec("csft", "after CSFT, bidirectional, mean pooling", "csft", pooling="mean", bidirectional=True),
    EncoderSpec("csft-mntp", "after CSFT + MNTP, bidirectional, mean pooling", "mntp", pooling="mean",
                bidirectional=True),
    EncoderSpec("llm2rec", "after CSFT + MNTP + item contrastive learning (full LLM2Rec)", "contrastive",
                pooling="mean", bidirectional=True),
    EncoderSpec("llm2rec+pairs", "LLM2Rec whose contrastive stage also has collaborative positives (items "
                "close in users' training sequences)", "contrastive_pairs", pooling="mean", bidirectional=True),
    EncoderSpec("llm2rec-causal-mean", "full LLM2Rec extracted as the official code does (causal attention, "
                "mean pooling)", "contrastive", pooling="mean", bidirectional=False),
)  # fmt: skip

_BY_NAME = {spec.name: spec for spec in ENCODERS}
ENCODER_NAMES: tuple[str, ...] = tuple(_BY_NAME)


def encoder_spec(name: str) -> EncoderSpec:
    if name not in _BY_NAME:
        raise ConfigError(f"unknown encoder {name!r}; choose from {', '.join(ENCODER_NAMES)}")
    return _BY_NAME[name]
