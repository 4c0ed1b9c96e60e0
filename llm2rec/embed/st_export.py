"""An :class:`~llm2rec.embed.encoder.Encoder` as a sentence-transformers model that gives the same vectors.

llm2rec's mean pooling averages the title's own tokens: special tokens the tokenizer adds (the BOS of
Llama / Mistral / Gemma tokenizers) are attended to but not pooled, as in training. A sentence-transformers
``Pooling("mean")`` averages every attended token, BOS included, which gives other vectors. So for a
tokenizer that puts special tokens in front of a text, the export

- saves a tokenizer that adds them no more, and writes them as the model's default prompt instead
  (``config_sentence_transformers.json``: ``prompts`` / ``default_prompt_name``), so every text is still
  encoded as ``BOS + text``;
- pools with ``include_prompt=False``, so sentence-transformers leaves the prompt (the BOS) out of the mean.

A tokenizer that appends special tokens (an EOS after the text) cannot be exported this way and is refused.
Whatever the tokenizer, the exported directory is loaded again and a few texts are encoded both ways
before it is published; vectors that differ raise :class:`ExportMismatch` and nothing is written.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from llm2rec.errors import ConfigError

PROMPT_NAME = "llm2rec"
# Texts every export is checked on (different lengths, so batches pad): more can be given.
CHECK_TEXTS = (
    "Digital Caliper Stainless Steel 6 inch",
    "Beaker",
    "Nitrile Gloves Large Box of 100",
    "Acrylic Paint Set 24 Colors, Watercolor Brush Pens, Sketch Book for Drawing 100 Sheets",
)
_PROBE = "Digital Caliper 6 inch"


class ExportMismatch(ConfigError):
    """The exported sentence-transformers model does not give the encoder's vectors."""


def special_affixes(tokenizer, text: str = _PROBE) -> tuple[list[int], list[int]]:
    """The token ids the tokenizer puts before and after a text's own tokens (e.g. ``[BOS]``, ``[]``)."""
    full = list(tokenizer(text)["input_ids"])
    plain = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    for start in range(len(full) - len(plain) + 1):
        if full[start : start + len(plain)] == plain:
            return full[:start], full[start + len(plain) :]
    raise ConfigError("cannot tell which special tokens the tokenizer adds to a text; not exported")


def export_sentence_transformers(encoder, out_dir: str | Path, check_texts=()) -> Path:
    """Write ``encoder`` (mean pooling) to ``out_dir`` so ``SentenceTransformer(out_dir)`` gives its vectors."""
    from llm2rec.io import atomic_dir

    if encoder.pooling != "mean":
        raise ConfigError("only mean-pooled encoders can be exported to sentence-transformers")
    prefix, suffix = special_affixes(encoder.tokenizer)
    if suffix:
        raise ConfigError(
            f"the tokenizer appends special token(s) {encoder.tokenizer.convert_ids_to_tokens(suffix)} to "
            "every text, which sentence-transformers' mean pooling would average in and llm2rec does not: "
            "this encoder cannot be exported to sentence-transformers"
        )
    texts = [*CHECK_TEXTS, *(str(t) for t in check_texts if str(t).strip())]
    out_dir = Path(out_dir)
    with tempfile.TemporaryDirectory(dir=out_dir.parent if out_dir.parent.exists() else None) as staging:
        model = _build(encoder, Path(staging), prefix)
        with atomic_dir(
            out_dir, overwrite=True, kind="sentence-transformers", legacy=("modules.json",)
        ) as tmp:
            model.save(str(tmp))
            check_same_vectors(encoder, tmp, texts)
    return out_dir


def _build(encoder, staging: Path, prefix: list[int]):
    """The sentence-transformers model: the encoder's weights, a tokenizer that adds no prefix (which is
    the default prompt instead), mean pooling that leaves the prompt out."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    encoder.model.save_pretrained(staging)
    prompt = _prompt_tokenizer(encoder.tokenizer, prefix, staging) if prefix else None
    if prompt is None:
        encoder.tokenizer.save_pretrained(staging)
    transformer = Transformer(str(staging), max_seq_length=encoder.max_length)
    pooling = Pooling(transformer.get_embedding_dimension(), "mean", include_prompt=prompt is None)
    extra = {"prompts": {PROMPT_NAME: prompt}, "default_prompt_name": PROMPT_NAME} if prompt else {}
    return SentenceTransformer(modules=[transformer, pooling], device="cpu", **extra)


def _prompt_tokenizer(tokenizer, prefix: list[int], staging: Path) -> str:
    """Save to ``staging`` a copy of ``tokenizer`` that adds no BOS and does not count it as special (so
    sentence-transformers counts it in the prompt's length); return the prompt that puts it back in front
    of a text: the text is then tokenized exactly as ``tokenizer`` tokenizes it."""
    from transformers import AutoTokenizer

    bos = tokenizer.bos_token
    if bos is None or prefix != [tokenizer.bos_token_id]:
        raise ConfigError(
            f"the tokenizer puts {tokenizer.convert_ids_to_tokens(prefix)} in front of every text; only a "
            "BOS token there can be exported to sentence-transformers"
        )
    tokenizer.save_pretrained(staging)
    exported = AutoTokenizer.from_pretrained(staging)
    exported.add_bos_token = False
    exported.bos_token = None
    exported.padding_side = tokenizer.padding_side
    if exported.pad_token is None:
        exported.pad_token = tokenizer.pad_token
    for prompt in (bos, bos + " "):  # " ": SentencePiece tokenizers mark a word start only at a text's start
        if all(_same_ids(tokenizer, exported, prompt, text) for text in (*CHECK_TEXTS, _PROBE)):
            exported.save_pretrained(staging)
            return prompt
    raise ConfigError(
        f"no prompt reproduces how the tokenizer puts {bos!r} in front of a text; not exported to "
        "sentence-transformers"
    )


def _same_ids(tokenizer, exported, prompt: str, text: str) -> bool:
    return list(exported(prompt + text)["input_ids"]) == list(tokenizer(text)["input_ids"]) and list(
        exported(text)["input_ids"]
    ) == list(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_same_vectors(encoder, st_dir: str | Path, texts, rtol: float | None = None) -> float:
    """Encode ``texts`` with ``encoder`` and with the sentence-transformers model in ``st_dir`` (on the
    encoder's device); raise :class:`ExportMismatch` when a vector differs by more than ``rtol`` of its
    norm (1e-4 in float32, 2e-2 in half precision). Returns the largest relative difference."""
    import torch
    from sentence_transformers import SentenceTransformer

    param = next(encoder.model.parameters())
    if rtol is None:
        rtol = 1e-4 if param.dtype == torch.float32 else 2e-2
    texts = list(texts)
    model = SentenceTransformer(str(st_dir), device=str(param.device), local_files_only=True)
    theirs = np.asarray(model.encode(texts, convert_to_numpy=True), dtype=np.float32)
    ours = encoder.encode(texts)
    norms = np.maximum(np.linalg.norm(ours, axis=1), 1e-12)
    worst = float((np.linalg.norm(theirs - ours, axis=1) / norms).max())
    if worst > rtol:
        raise ExportMismatch(
            f"the exported sentence-transformers model gives other vectors than llm2rec's encoder (largest "
            f"relative difference {worst:.2e} > {rtol:.0e} over {len(texts)} texts); not exported"
        )
    return worst
