"""A trained run as a recommender: ``Recommender.load(RUN_DIR, encoder=...).recommend(history, k)``.

It reloads one saved recommender of a run (``RUN/seqrec/[<dataset>/]<encoder>-<model>/seed-<s>/``, the
weights the results came from) with its dataset. A history item is an item id, an item key (e.g. an
ASIN) or a title (exact, case and spacing ignored). A title that is not in the catalogue is a *new item*:
it is embedded on the fly with the run's own encoder (the model, pooling, attention, template and
normalisation recorded beside the item vectors) and goes through the recommender's adapter like every
other item, so it can be in the history and be recommended (the inductive case text embeddings exist for).
ID-only recommenders cannot take new items.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from llm2rec.errors import ConfigError


@dataclass(frozen=True)
class Recommendation:
    item_id: int  # > num_items: a new item added to this recommender (not in the dataset)
    title: str
    score: float
    new: bool = False

    def as_tuple(self) -> tuple[int, str, float]:
        return self.item_id, self.title, self.score


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold()


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
        self.titles: list[str] = list(dataset.titles)
        self.keys: list[str] = [""] * (dataset.num_items + 1)
        for item_id, key in zip(dataset.items["item_id"], dataset.items["key"], strict=True):
            self.keys[int(item_id)] = str(key)
        self._by_key = {k: i for i, k in enumerate(self.keys) if k}
        self._by_title = {}
        for i, title in enumerate(self.titles[1:], start=1):
            self._by_title.setdefault(_norm(title), i)
        with torch.no_grad():
            self.table = model.item_encoder.table().detach().clone()
        self._encoder = None

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

        ds = Dataset.load(record["dataset"]["path"])
        embeddings = (record.get("embeddings") or {}).get("path")
        return cls(models[name], ds, cfg, embeddings, name=f"{encoder}-{recommender}/{name}")

    # ------------------------------------------------------------------------------------ new items
    @property
    def num_items(self) -> int:
        return len(self.titles) - 1

    def add_items(self, titles: list[str]) -> list[int]:
        """Embed ``titles`` with the run's encoder and add them as new items; returns their ids."""
        if not titles:
            return []
        if self.record is None or self.cfg.item_repr == "id":
            raise ConfigError(
                f"{self.name} is an ID-only recommender: it cannot rank a title it has never seen "
                "(choose a text encoder, e.g. --encoder llm2rec)"
            )
        vectors = self._embed(titles)
        with torch.no_grad():
            rows = self.model.item_encoder.adapter(torch.from_numpy(vectors).to(self.table.device))
        self.table = torch.cat([self.table, rows.to(self.table.dtype)])
        first = len(self.titles)
        for offset, title in enumerate(titles):
            self.titles.append(title)
            self.keys.append("")
            self._by_title.setdefault(_norm(title), first + offset)
        return list(range(first, first + len(titles)))

    def _embed(self, titles: list[str]) -> np.ndarray:
        from llm2rec.embed.encoder import Encoder
        from llm2rec.seqrec.item_encoder import normalise_vectors

        r = self.record
        if self._encoder is None:
            kwargs = (
                {}
                if r["encoder_kind"] != "llm"
                else {"pooling": r["pooling"], "bidirectional": r["bidirectional"]}
            )
            self._encoder = Encoder.load(r["encoder"], **kwargs)
        template = r.get("template", "{title}")
        texts = [_fill(template, t) for t in titles]
        vectors = self._encoder.encode(texts, normalize=bool(r.get("normalize")))
        padded = np.concatenate([np.zeros((1, vectors.shape[1]), np.float32), vectors])
        # The run's normalisation with the catalogue's statistics (its mean vector, its mean norm).
        return normalise_vectors(padded, self.cfg.vector_norm, reference=self._catalogue_vectors())[1:]

    def _catalogue_vectors(self) -> np.ndarray | None:
        if self.cfg.vector_norm == "none":
            return None
        from llm2rec.data.vectors import load_item_vectors

        return load_item_vectors(self.embeddings, self.dataset.num_items, self.dataset.known_checksums)

    # ------------------------------------------------------------------------------- recommending
    def resolve(self, ref) -> int:
        """An item id, key or catalogue title → item id; an unknown title is added as a new item."""
        if isinstance(ref, int | np.integer) or (isinstance(ref, str) and ref.strip().isdigit()):
            item = int(ref)
            if 1 <= item <= self.num_items:
                return item
            raise ConfigError(f"item id {item} is not in 1..{self.num_items}")
        text = str(ref).strip()
        if not text:
            raise ConfigError("an empty history item")
        if text in self._by_key:
            return self._by_key[text]
        found = self._by_title.get(_norm(text))
        return found if found is not None else self.add_items([text])[0]

    @torch.no_grad()
    def recommend(self, history, k: int = 10, exclude_history: bool = False) -> list[Recommendation]:
        """The top ``k`` items after ``history`` (oldest first), best first."""
        if not history:
            raise ConfigError("a history needs at least one item")
        if k < 1:
            raise ConfigError(f"k must be ≥ 1, not {k}")
        ids = [self.resolve(h) for h in history][-self.dataset.max_history :]
        histories = torch.tensor([ids], device=self.table.device)
        states = self.model.user_states(
            histories, torch.tensor([len(ids)], device=self.table.device), self.table
        )
        scores = (states @ self.table[1:].T)[0].float()
        if exclude_history:
            scores[torch.tensor(ids) - 1] = float("-inf")
        top = torch.topk(scores, min(k, scores.numel()))
        return [Recommendation(int(i) + 1, self.titles[int(i) + 1], float(s), new=int(i) + 1 > self.dataset.num_items)
                for s, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]  # fmt: skip


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
