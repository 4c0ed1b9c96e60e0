"""Item-embedding extraction: a dataset's items through an :class:`~llm2rec.embed.encoder.Encoder` into
an item-vector file (``FILE.npy`` + ``FILE.json``, see :mod:`llm2rec.data.vectors`), which the seqrec
stage checks before training.

Built for millions of items: the items are cut into shards (:mod:`llm2rec.embed.shards`); under
``torchrun`` / ``accelerate launch`` the processes share them out. Each process renders and encodes its
shards' texts a chunk at a time, longest first (the encoder tokenizes and length-sorts each chunk),
writing every chunk's rows straight into the shard's file in ``FILE.npy.work/``; nothing holds more than a
chunk of vectors or tokens. A finished shard is recorded, and an extraction that was interrupted and is
run again encodes only the shards that did not finish. Process 0 then merges the shards by streaming
into the final file, published in one rename, and removes the work directory. The processes share
nothing but the output's directory (no temporary directory, so one per node is fine).
"""

from __future__ import annotations

import logging
import string
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

from llm2rec.data.vectors import VECTORS_KIND, VectorRows, as_stored, vector_dtype
from llm2rec.embed.shards import (
    Shard,
    finished,
    forget,
    mark_finished,
    merge_shards,
    plan_shards,
    prepare_work_dir,
    remove_work_dir,
    shard_identity,
)
from llm2rec.errors import ConfigError, OutputError
from llm2rec.io import portable_path, work_dir_for
from llm2rec.outdir import check_output_file

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "{title}"
CHUNK_BATCHES = 8  # batches per encode call: the texts tokenized at a time, length-sorted among themselves
# Processes wait at the end for the slowest one, and for process 0's merge: hours on a large catalogue.
BARRIER_TIMEOUT = timedelta(hours=6)


def template_fields(template: str) -> list[str]:
    try:
        return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise ConfigError(f"bad --template {template!r}: {exc}") from exc


class ItemTexts:
    """The items' texts in item-id order (1..N), filled from ``template`` a slice at a time.

    ``items``: the items table (a DataFrame), or the path of a dataset's ``items.parquet``, of which only the
    template's columns are read: a row group at a time when the file is in item-id order (as ``llm2rec
    prepare`` writes it), else held sorted in Arrow memory. Either way no text exists before it is asked for.
    """

    def __init__(self, items, template: str = DEFAULT_TEMPLATE):
        fields = template_fields(template)
        from_file = isinstance(items, str | Path)
        columns = _ParquetRows.column_names(Path(items)) if from_file else list(items.columns)
        missing = [f for f in fields if f not in columns]
        if missing or any(f == "" or f.isdigit() for f in fields):
            raise ConfigError(
                f"--template {template!r} names {', '.join(repr(f) for f in missing or fields)}, which is not "
                f"an item column; available: {', '.join(map(str, columns))} (use {{title}} style fields)"
            )
        self.template, self._fields = template, fields
        self._rows = _ParquetRows(Path(items), fields) if from_file else _FrameRows(items, fields)

    def __len__(self) -> int:
        return self._rows.size

    def texts(self, start: int = 0, stop: int | None = None) -> list[str]:
        """The texts of the items at positions ``start .. stop`` (item ids ``start+1 .. stop``)."""
        stop = len(self) if stop is None else min(stop, len(self))
        if not self._fields:
            return [self.template.format_map({})] * max(0, stop - start)
        columns = self._rows.columns(start, stop)
        return [
            self.template.format_map(
                {f: "" if v is None else v for f, v in zip(self._fields, values, strict=True)}
            )
            for values in zip(*(columns[f] for f in self._fields), strict=True)
        ]


def _not_contiguous() -> ConfigError:
    return ConfigError("items.parquet item ids are not contiguous 1..N; re-run `llm2rec prepare`")


class _FrameRows:
    """An items DataFrame's template columns, sorted by item id."""

    def __init__(self, items, fields: list[str]):
        ordered = items.sort_values("item_id")
        if not np.array_equal(ordered["item_id"].to_numpy(), np.arange(1, len(ordered) + 1)):
            raise _not_contiguous()
        self.size, self._table = len(ordered), ordered[fields].reset_index(drop=True)

    def columns(self, start: int, stop: int) -> dict[str, list]:
        return {f: self._table[f].iloc[start:stop].tolist() for f in self._table.columns}


class _ParquetRows:
    """items.parquet's template columns by item position (see :class:`ItemTexts`)."""

    def __init__(self, path: Path, fields: list[str]):
        import pyarrow.parquet as pq

        self._file, self._fields = _read(path, pq.ParquetFile), fields
        ids = _read(path, lambda p: self._file.read(columns=["item_id"])).column("item_id").to_numpy()
        self.size, expected = len(ids), np.arange(1, len(ids) + 1)
        self._sorted = None  # the columns in item order, when the file is not
        if not np.array_equal(ids, expected):
            order = np.argsort(ids, kind="stable")
            if not np.array_equal(ids[order], expected):
                raise _not_contiguous()
            self._sorted = self._file.read(columns=fields).take(order)
        meta = self._file.metadata
        self._starts = np.cumsum([0] + [meta.row_group(g).num_rows for g in range(meta.num_row_groups)])
        self._cached: tuple = ((), None)  # (row groups, their table): consecutive slices share a group

    @staticmethod
    def column_names(path: Path) -> list[str]:
        import pyarrow.parquet as pq

        return list(_read(path, pq.read_schema).names)

    def columns(self, start: int, stop: int) -> dict[str, list]:
        if stop <= start:
            return {f: [] for f in self._fields}
        if self._sorted is not None:
            part = self._sorted.slice(start, stop - start)
        else:
            first = int(np.searchsorted(self._starts, start, side="right")) - 1
            last = int(np.searchsorted(self._starts, stop - 1, side="right")) - 1
            groups = tuple(range(first, last + 1))
            if self._cached[0] != groups:
                self._cached = (groups, self._file.read_row_groups(list(groups), columns=self._fields))
            part = self._cached[1].slice(start - int(self._starts[first]), stop - start)
        return {f: part.column(f).to_pylist() for f in self._fields}


def _read(path: Path, reader):
    from llm2rec.errors import DatasetError

    try:
        return reader(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise DatasetError(
            f"{path} is not a readable Parquet table ({exc}); re-run `llm2rec prepare`"
        ) from None


def render_item_texts(items, template: str = DEFAULT_TEMPLATE) -> list[str]:
    """One text per item in item-id order (1..N), from ``template`` filled with the item's columns."""
    return ItemTexts(items, template).texts()


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
    dtype: str = "float32",
    shard_size: int | None = None,
) -> Path:
    """Encode every item of ``dataset_dir`` and write ``out_path`` (.npy) plus its ``.json`` record.

    ``encoder`` is an :class:`~llm2rec.embed.encoder.Encoder` or anything :meth:`Encoder.from_pretrained` accepts
    (a model dir, ``smollm2-135m``, ``st:NAME``). An existing ``out_path`` is replaced only with
    ``overwrite`` and only when llm2rec wrote it. ``dtype``: ``float32`` or ``float16`` (half the file;
    readers widen it to float32). ``shard_size``: items per shard, the unit an interrupted extraction
    resumes by (default :data:`llm2rec.embed.shards.DEFAULT_SHARD_SIZE`). Returns ``out_path``.
    """
    from llm2rec.data.dataset import Dataset
    from llm2rec.distributed import Processes

    out_path = Path(out_path)
    if out_path.suffix != ".npy":
        raise ConfigError(f"--out {out_path} must end with .npy")
    dtype = vector_dtype(dtype)
    if shard_size is not None and shard_size < 1:
        raise ConfigError(f"--shard-size {shard_size}: a shard holds at least one item")
    check_output_file(out_path, VECTORS_KIND, overwrite=overwrite)
    dataset = Dataset.load(dataset_dir)
    items = ItemTexts(dataset.root / "items.parquet", template)  # read a shard's rows at a time
    procs = Processes(BARRIER_TIMEOUT)
    encoder = _load_encoder(encoder, pooling, bidirectional, procs.device, max_length)
    shards = plan_shards(len(items), procs.world, shard_size)
    identity = shard_identity(encoder, dataset, template=template, normalize=normalize,
                              max_length=_max_length(encoder, max_length), dtype=dtype)  # fmt: skip
    work = work_dir_for(out_path)
    todo = _shards_to_encode(procs, work, shards, identity, encoder.dim, dtype)
    mine = todo[procs.rank :: procs.world]
    settings = {"batch_size": batch_size, "normalize": normalize, "dtype": dtype}
    _encode_shards(encoder, items, work, mine, identity, settings, show_progress and procs.main, procs.rank)
    procs.wait()
    if procs.main:
        meta = _metadata(encoder, dataset, dataset_dir, out_path, template, normalize, procs.world)
        merge_shards(work, shards, out_path, identity, encoder.dim, dtype,
                     {**meta, "shards": len(shards), "shard_size": shards[0].rows if shards else 0})  # fmt: skip
        remove_work_dir(work)
        log.info("wrote %s (%d x %d, %s; %d of %d shards encoded now)", out_path, len(items) + 1,
                 encoder.dim, dtype.name, len(todo), len(shards))  # fmt: skip
    procs.wait()
    return out_path


def _load_encoder(encoder, pooling, bidirectional, device, max_length):
    from llm2rec.embed.encoder import Encoder

    if isinstance(encoder, str | Path):
        return Encoder.from_pretrained(
            encoder, pooling=pooling, bidirectional=bidirectional, device=device, max_length=max_length
        )
    return encoder


def _max_length(encoder, default: int) -> int:
    """The truncation length the encoder applies (a sentence-transformers model keeps its own)."""
    if hasattr(encoder, "max_length"):
        return int(encoder.max_length)
    return int(getattr(encoder.model, "max_seq_length", None) or default)


def _shards_to_encode(procs, work: Path, shards: list[Shard], identity, dim: int, dtype) -> list[Shard]:
    """The shards no earlier run finished, decided by process 0 (which also prepares the work directory)
    and handed to every process, so that all share out the same list; a refusal is raised everywhere."""
    from llm2rec.distributed import from_main_process

    answer: list[Shard] | str = []
    if procs.main:
        try:
            prepare_work_dir(work)
            answer = [s for s in shards if not finished(work, s, identity, dim, dtype)]
        except OutputError as exc:
            answer = str(exc)
    answer = from_main_process(answer)
    if isinstance(answer, str):
        raise OutputError(answer)
    if procs.main:
        if identity is None:
            log.warning(
                "the encoder has no content hash: shards of an earlier run cannot be checked, none is reused"
            )
        elif len(answer) < len(shards):
            log.info(
                "%d of %d shards finished in an earlier run: reused", len(shards) - len(answer), len(shards)
            )
    return answer


def _encode_shards(encoder, items: ItemTexts, work: Path, shards, identity, settings, progress, rank):
    from tqdm.auto import tqdm

    with tqdm(total=sum(s.rows for s in shards), desc="embed", unit="item", disable=not progress) as bar:
        for shard in shards:
            started = time.perf_counter()
            forget(work, shard)  # a record left from before must not vouch for a file being rewritten
            _encode_shard(encoder, items, work, shard, settings, bar)
            mark_finished(work, shard, identity, encoder.dim, settings["dtype"], rank=rank,
                          seconds=round(time.perf_counter() - started, 3))  # fmt: skip


def _encode_shard(encoder, items: ItemTexts, work: Path, shard: Shard, settings: dict, bar) -> None:
    """Encode one shard into its vector file, a chunk of texts at a time, longest texts first."""
    texts = items.texts(shard.start, shard.stop)
    order = np.argsort(-np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)), kind="stable")
    chunk = max(1, settings["batch_size"]) * CHUNK_BATCHES
    with VectorRows.create(shard.vectors(work), shard.rows, encoder.dim, settings["dtype"]) as rows:
        for first in range(0, len(order), chunk):
            part = order[first : first + chunk]
            vectors = encoder.encode(
                [texts[i] for i in part],
                batch_size=settings["batch_size"],
                normalize_embeddings=settings["normalize"],
                show_progress_bar=False,
            )
            rows.scatter(part, as_stored(vectors, settings["dtype"]))
            bar.update(len(part))


def _metadata(encoder, dataset, dataset_dir, out_path: Path, template, normalize, world: int) -> dict:
    return {
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
