"""A trained run as a recommender: ``Recommender.load(RUN_DIR, encoder=...).recommend(history, k)``.

It reloads one saved recommender of a run (``RUN/seqrec/[<dataset>/]<encoder>-<model>/seed-<s>/``, the
weights the results came from) with its dataset. A history entry is an item id, an item key (e.g. an
ASIN) or a title, read by the rule of :mod:`llm2rec.serve.history` (``id:`` / ``key:`` / ``title:``
prefixes; a bare number is never an id). A title that is not in the catalogue is a *new title*: it is
embedded with the run's own encoder (the model, pooling, attention, template and normalisation recorded
beside the item vectors) and goes through the recommender's adapter like every other item, so it can be in
the history and be recommended, *in that request only*: the catalogue a recommender shares between
requests changes only through an explicit :meth:`Recommender.add_items`. One ``Recommender`` may serve
concurrent requests (threads): each request reads one immutable catalogue snapshot; ``add_items`` swaps
in a new one under a lock; the text encoder is loaded once and embeds one batch at a time.
ID-only recommenders cannot take new titles.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from llm2rec.errors import ConfigError
from llm2rec.serve.history import Catalogue, HistoryEntry, norm_title

# One text encoder loads at a time in a process: transformers' lazy imports are not thread-safe (two
# recommenders' first new titles at once failed with "cannot import name 'AutoConfig'").
_LOADING = threading.Lock()


@dataclass(frozen=True)
class Recommendation:
    item_id: int  # > the dataset's items: a new title (of this request, or added with add_items)
    title: str
    score: float
    new: bool = False

    def as_tuple(self) -> tuple[int, str, float]:
        return self.item_id, self.title, self.score


@dataclass(frozen=True)
class Ranking:
    """One request's answer: how each history entry was read, and the top items, best first. A new
    title of the request has id ``catalogue size + j`` (j = 1, 2, ... in order of first mention), valid in
    this answer only."""

    history: list[HistoryEntry]
    items: list[Recommendation]
    new_titles: list[str]


class Recommender:
    """One saved recommender of a run, with its catalogue. Use :meth:`load`."""

    def __init__(self, model, dataset, cfg, embeddings: Path | None = None, *, name: str = "recommender"):
        from llm2rec.data.vectors import metadata_path

        self.model, self.dataset, self.cfg, self.name = model, dataset, cfg, name
        self.embeddings = Path(embeddings) if embeddings else None
        # How the item vectors were made (encoder, pooling, attention, template): new titles are made alike.
        self.record = (
            json.loads(metadata_path(self.embeddings).read_text(encoding="utf-8")) if embeddings else None
        )
        keys = [""] * (dataset.num_items + 1)
        for item_id, key in zip(dataset.items["item_id"], dataset.items["key"], strict=True):
            keys[int(item_id)] = str(key)
        with torch.no_grad():
            table = model.item_encoder.table().detach().clone()
        self._catalogue = Catalogue.build(list(dataset.titles), keys, table)
        self._add_lock = threading.Lock()  # add_items: one writer at a time
        self._embed_lock = threading.Lock()  # the text encoder: loaded once, one batch at a time
        self._encoder = None
        self._reference: np.ndarray | None = None  # the catalogue's raw vectors (normalisation statistics)

    # --------------------------------------------------------------------------------------- loading
    @classmethod
    def load(
        cls,
        run_dir: str | Path,
        encoder: str = "llm2rec",
        recommender: str = "sasrec",
        *,
        dataset: str | None = None,
        seed: int | None = None,
        device: str = "cpu",
    ) -> Recommender:
        """The saved ``recommender`` trained on ``encoder``'s vectors in ``run_dir`` (a multi-dataset run:
        on evaluation ``dataset``); ``seed`` defaults to the first saved one."""
        from llm2rec.seqrec.saved import load_models

        results_dir = results_dir_of(run_dir, encoder, recommender, dataset)
        cfg, data, models = load_models(results_dir, device=device)
        name = f"seed-{seed}" if seed is not None else sorted(models)[0]
        if name not in models:
            raise ConfigError(f"{results_dir} has no saved model {name}; saved: {', '.join(sorted(models))}")
        record = json.loads((results_dir / "config.json").read_text(encoding="utf-8"))
        from llm2rec.data.dataset import Dataset
        from llm2rec.seqrec.record import recorded_path

        # Paths the results dir recorded are relative to it: a moved or copied run still loads.
        ds = Dataset.load(recorded_path(results_dir, record["dataset"]["path"]))
        embeddings = (record.get("embeddings") or {}).get("path")
        embeddings = recorded_path(results_dir, embeddings) if embeddings else None
        return cls(models[name], ds, cfg, embeddings, name=f"{encoder}-{recommender}/{name}")

    # ------------------------------------------------------------------------------------ catalogue
    @property
    def catalogue(self) -> Catalogue:
        """The current catalogue snapshot (immutable; ``add_items`` replaces it)."""
        return self._catalogue

    @property
    def num_items(self) -> int:
        return self._catalogue.size

    @property
    def titles(self) -> tuple[str, ...]:
        return self._catalogue.titles

    @property
    def keys(self) -> tuple[str, ...]:
        return self._catalogue.keys

    @property
    def table(self) -> torch.Tensor:
        return self._catalogue.table

    @property
    def takes_new_titles(self) -> bool:
        return self.record is not None and self.cfg.item_repr != "id"

    def add_items(self, titles: list[str]) -> list[int]:
        """Add ``titles`` to the catalogue for good (embedded with the run's encoder) and return their ids,
        in order. A title the catalogue already holds (case and spacing ignored), or one given twice, is
        not added again: its existing id is returned. This is the only call that changes the catalogue;
        recommending never does."""
        clean = [" ".join(str(t).split()) for t in titles]
        if any(not t for t in clean):
            raise ConfigError("add_items: an empty title")
        with self._add_lock:
            cat = self._catalogue
            unseen: dict[str, str] = {}  # the first spelling of each title the catalogue lacks
            for t in clean:
                if cat.find_title(t) is None:
                    unseen.setdefault(norm_title(t), t)
            if unseen:
                fresh = list(unseen.values())
                cat = cat.extended(fresh, self._embed_rows(fresh))
                self._catalogue = cat
        return [cat.find_title(t) for t in clean]

    def _embed_rows(self, titles: list[str]) -> torch.Tensor:
        """``titles`` as rows of the item table: the run's encoder, normalisation and adapter."""
        if not self.takes_new_titles:
            raise ConfigError(
                f"{self.name} is an ID-only recommender: it cannot rank a title it has never seen "
                f"({titles[0]!r}; choose a text encoder, e.g. --encoder llm2rec)"
            )
        vectors = self._embed(titles)
        table = self._catalogue.table
        with torch.no_grad():
            rows = self.model.item_encoder.adapter(torch.from_numpy(vectors).to(table.device))
        return rows.to(table.dtype)

    def _embed(self, titles: list[str]) -> np.ndarray:
        from llm2rec.seqrec.item_encoder import normalise_vectors

        template = self.record.get("template", "{title}")
        texts = [_fill(template, t) for t in titles]
        with self._embed_lock:
            with _LOADING:
                encoder = self._load_encoder()
            vectors = encoder.encode(texts, normalize_embeddings=bool(self.record.get("normalize")))
            if self._reference is None and self.cfg.vector_norm != "none":
                from llm2rec.data.vectors import load_item_vectors

                self._reference = load_item_vectors(
                    self.embeddings, self.dataset.num_items, self.dataset.known_checksums
                )
        padded = np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors])
        # The run's normalisation with the catalogue's statistics (its mean vector, its mean norm).
        return normalise_vectors(padded, self.cfg.vector_norm, reference=self._reference)[1:]

    def _encoder_source(self) -> str:
        """The encoder the vectors were made with: found beside the vector file first (the run's own,
        wherever the run now is), else as recorded (a hub id, or an absolute path of an older record)."""
        relative = self.record.get("encoder_relative")
        if relative and (self.embeddings.parent / relative).exists():
            return str(self.embeddings.parent / relative)
        return self.record["encoder"]

    def _load_encoder(self):
        if self._encoder is None:
            from llm2rec.embed.encoder import Encoder

            r = self.record
            kwargs = (
                {}
                if r["encoder_kind"] != "llm"
                else {"pooling": r["pooling"], "bidirectional": r["bidirectional"]}
            )
            self._encoder = Encoder.load(self._encoder_source(), **kwargs)
        return self._encoder

    # ------------------------------------------------------------------------------- recommending
    def read_history(self, history) -> list[HistoryEntry]:
        """How each entry of ``history`` is read (id / key / title / new), without embedding anything."""
        cat = self._catalogue
        return [cat.read(h) for h in history]

    def recommend(self, history, k: int = 10, exclude_history: bool = False) -> list[Recommendation]:
        """The top ``k`` items after ``history`` (oldest first), best first (see :meth:`rank`)."""
        return self.rank(history, k, exclude_history).items

    @torch.no_grad()
    def rank(self, history, k: int = 10, exclude_history: bool = False) -> Ranking:
        """The top ``k`` items after ``history`` (oldest first), best first. The recommender reads the last
        ``max_history`` entries (as in training); ``exclude_history`` leaves out every item of the whole
        history, so fewer than ``k`` may come back. New titles are ranked in this request only; ``k`` may
        be at most the catalogue's size plus the request's new titles."""
        if not history:
            raise ConfigError("a history needs at least one item")
        cat = self._catalogue  # one snapshot for the whole request
        entries = [cat.read(h) for h in history]
        slots = {norm_title(e.title): None for e in entries if e.kind == "new"}
        new_titles = []
        for e in entries:
            if e.kind == "new" and slots[norm_title(e.title)] is None:
                new_titles.append(e.title)
                slots[norm_title(e.title)] = cat.size + len(new_titles)
        ids = [e.item_id if e.kind != "new" else slots[norm_title(e.title)] for e in entries]
        candidates = cat.size + len(new_titles)
        if not 1 <= k <= candidates:
            raise ConfigError(f"k must be in 1..{candidates} (the catalogue's items"
                              f"{' and this request’s new titles' if new_titles else ''}), not {k}")  # fmt: skip
        table = cat.table if not new_titles else torch.cat([cat.table, self._embed_rows(new_titles)])
        recent = ids[-self.dataset.max_history :]
        states = self.model.user_states(
            torch.tensor([recent], device=table.device),
            torch.tensor([len(recent)], device=table.device),
            table,
        )
        scores = (states @ table[1:].T)[0].float()
        if exclude_history:
            scores[torch.tensor(sorted(set(ids))) - 1] = float("-inf")
        top = torch.topk(scores, k)
        items = []
        for s, i in zip(top.values.tolist(), top.indices.tolist(), strict=True):
            if s == float("-inf"):
                break
            item = i + 1
            title = cat.titles[item] if item <= cat.size else new_titles[item - cat.size - 1]
            items.append(Recommendation(item, title, float(s), new=item > self.dataset.num_items))
        return Ranking(entries, items, new_titles)


def _fill(template: str, title: str) -> str:
    """The run's item template with only the title known (a new item has no other field)."""
    from llm2rec.embed.extract import template_fields

    return template.format_map({f: (title if f == "title" else "") for f in template_fields(template)})


def results_dir_of(run_dir, encoder: str, recommender: str, dataset: str | None) -> Path:
    """The results dir of one row of a run, with a clear error naming the rows the run has."""
    from llm2rec.pipeline.layout import RunLayout

    layout = RunLayout(run_dir)
    if not layout.root.is_dir():
        raise FileNotFoundError(f"run directory not found: {layout.root}")
    multi = (layout.root / "datasets").is_dir()
    if multi and dataset is None:
        names = sorted(p.name for p in (layout.root / "seqrec").iterdir() if p.is_dir())
        raise ConfigError(f"{layout.root} is a multi-dataset run: choose --dataset from {', '.join(names)}")
    path = layout.seqrec(encoder, recommender, dataset if multi else None)
    if not path.is_dir():
        rows = available_rows(layout.root, dataset if multi else None)
        raise ConfigError(
            f"{layout.root} has no {encoder} × {recommender} row; it has: {', '.join(rows) or 'none'}"
        )
    return path


def available_rows(run_dir, dataset: str | None = None) -> list[str]:
    """``<encoder>-<model>`` of every trained (saved) recommender of a run."""
    root = Path(run_dir) / "seqrec" / (dataset or "")
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and any(p.glob("seed-*/model.safetensors")))
