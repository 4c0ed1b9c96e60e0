"""Item-embedding extraction: a dataset's items through an :class:`~llm2rec.embed.encoder.Encoder` into
an item-vector file (``FILE.npy`` + ``FILE.json``, see :mod:`llm2rec.data.vectors`), which the seqrec
stage checks before training.

Under ``torchrun`` / ``accelerate launch`` each process encodes the items ``rank::world`` and writes a
shard; process 0 merges the shards in item order and writes the final files atomically.
"""

from __future__ import annotations

import logging
import string
from pathlib import Path

import numpy as np

from llm2rec.data.vectors import VECTORS_KIND, save_item_vectors
from llm2rec.errors import ConfigError
from llm2rec.io import portable_path
from llm2rec.outdir import check_output_file

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "{title}"


def template_fields(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"bad --template {template!r}: {exc}") from exc


def render_item_texts(items, template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One text per item in item-id order (1..N), from ``template`` filled with the item's columns."""
    fields = template_fields(template)
    missing = [f for f in fields if f not in items.columns]
    if missing or any(f == "" or f.isdigit() for f in fields):
        raise ConfigError(
            f"--template {template!r} names {', '.join(repr(f) for f in missing or fields)}, which is not an "
            f"item column; available: {', '.join(map(str, items.columns))} (use {{title}} style fields)"
        )
    ordered = items.sort_values("item_id")
    expected = np.arange(1, len(ordered) + 1)
    if not np.array_equal(ordered["item_id"].to_numpy(), expected):
        raise ConfigError("items.parquet item ids are not contiguous 1..N; re-run `llm2rec prepare`")
    rows = ordered[fields].to_dict("records") if fields else [{}] * len(ordered)
    return [template.format_map({k: "" if v is None else v for k, v in row.items()}) for row in rows]


def _shard_path(out_path: Path, rank: int, world: int) -> Path:
    return out_path.with_name(f".{out_path.stem}.shard{rank}of{world}.npz")


def embed_items(
    encoder,
    dataset_dir: str | Path,
    out_path: str | Path,
    *,
    pooling: str | None = None,
    template: str = DEFAULT_TEMPLATE,
    normalize: bool = False,
    bidirectional: bool | None = None,
    batch_size: int = 32,
    max_length: int = 512,
    show_progress: bool = True,
    overwrite: bool = False,
) -> Path:
    """Encode every item of ``dataset_dir`` and write ``out_path`` (.npy) plus its ``.json`` record.

    ``encoder`` is an :class:`~llm2rec.embed.encoder.Encoder` or anything :meth:`Encoder.from_pretrained` accepts
    (a model dir, ``smollm2-135m``, ``st:NAME``). An existing ``out_path`` is replaced only with
    ``overwrite`` and only when llm2rec wrote it. Returns ``out_path``.
    """
    from llm2rec.data.dataset import Dataset
    from llm2rec.distributed import Processes
    from llm2rec.embed.encoder import Encoder

    out_path = Path(out_path)
    if out_path.suffix != ".npy":
        raise ConfigError(f"--out {out_path} must end with .npy")
    check_output_file(out_path, VECTORS_KIND, overwrite=overwrite)
    dataset = Dataset.load(dataset_dir)
    texts = render_item_texts(dataset.items, template)
    procs = Processes()
    rank, world = procs.rank, procs.world

    if isinstance(encoder, str | Path):
        encoder = Encoder.from_pretrained(
            encoder, pooling=pooling, bidirectional=bidirectional, device=procs.device, max_length=max_length
        )
    mine = np.arange(rank, len(texts), world)
    vectors = encoder.encode(
        [texts[i] for i in mine],
        batch_size=batch_size,
        normalize_embeddings=normalize,
        show_progress_bar=show_progress and rank == 0,
    )

    if world == 1:
        merged = _merge([(mine, vectors)], len(texts), encoder.dim)
    else:
        shard = _shard_path(out_path, rank, world)
        shard.parent.mkdir(parents=True, exist_ok=True)
        np.savez(shard, indices=mine, vectors=vectors)
        procs.wait()
        merged = None
        if rank == 0:
            parts = []
            for r in range(world):
                with np.load(_shard_path(out_path, r, world)) as part:
                    parts.append((part["indices"], part["vectors"]))
            merged = _merge(parts, len(texts), encoder.dim)

    if rank == 0:
        meta = {
            **encoder.describe(),
            "template": template,
            "normalize": bool(normalize),
            "num_items": dataset.num_items,
            "dataset_checksum": dataset.checksum,
            "dataset": portable_path(dataset_dir, out_path.parent),
            "processes": world,
            # relative to the vector file: a run moved or copied elsewhere still finds its own encoder
            "encoder_relative": portable_path(encoder.describe()["encoder"], out_path.parent),
        }
        save_item_vectors(out_path, merged, meta)
        log.info("wrote %s (%d x %d)", out_path, *merged.shape)
    if world > 1:
        procs.wait()
        _shard_path(out_path, rank, world).unlink(missing_ok=True)
    return out_path


def _merge(parts, num_items: int, dim: int) -> np.ndarray:
    """(N+1, d) float32 with row 0 zeros; ``parts`` hold 0-based item positions and their vectors."""
    out = np.zeros((num_items + 1, dim), dtype=np.float32)
    filled = np.zeros(num_items, dtype=bool)
    for indices, vectors in parts:
        out[np.asarray(indices) + 1] = vectors
        filled[np.asarray(indices)] = True
    if not filled.all():
        raise RuntimeError(f"{int((~filled).sum())} item(s) missing after merging the shards")
    return out
