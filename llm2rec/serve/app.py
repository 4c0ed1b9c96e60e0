"""``llm2rec serve RUN_DIR``: a small local web page over a finished run (FastAPI; plain HTML and JS).

Pick a user of the test split (their history, the true next item marked) or type titles, and see each
encoder's top-k side by side, and an item's nearest neighbours under each encoder's vectors. The JSON API:

``GET /api/rows``                      the encoders with a saved recommender, and the dataset's size
``GET /api/users?limit=&offset=``      test-split users: history titles and the true next item
``POST /api/recommend``                ``{"history": [...], "k": 10, "encoders": [...], "exclude_history": false}``
``GET /api/neighbours?item=&k=``       per encoder, the ``k`` items nearest ``item`` (centred cosine)
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, Field

from llm2rec.errors import USER_ERRORS

PAGE = Path(__file__).with_name("page.html")


class RecommendRequest(BaseModel):
    """The body of ``POST /api/recommend`` (module level: FastAPI resolves it by name)."""

    history: list[int | str] = Field(min_length=1)
    k: int = Field(10, ge=1, le=100)
    encoders: list[str] | None = None
    exclude_history: bool = False


class RunService:
    """The recommenders of one run (one per encoder), loaded on first use, and its test users."""

    def __init__(self, run_dir: str | Path, recommender: str = "sasrec", dataset: str | None = None):
        from llm2rec.serve.recommender import available_rows

        self.run_dir, self.recommender, self.dataset = Path(run_dir), recommender, dataset
        suffix = f"-{recommender}"
        self.encoders = [r[: -len(suffix)] for r in available_rows(run_dir, dataset) if r.endswith(suffix)]
        if not self.encoders:
            raise FileNotFoundError(f"{run_dir} has no saved {recommender} model to serve")
        self._loaded: dict = {}
        self._units: dict = {}
        first = self.get(self.encoders[0])
        self.data = first.dataset

    def get(self, encoder: str):
        from llm2rec.serve.recommender import Recommender

        if encoder not in self.encoders:
            raise KeyError(encoder)
        if encoder not in self._loaded:
            self._loaded[encoder] = Recommender.load(
                self.run_dir, encoder, self.recommender, dataset=self.dataset
            )
        return self._loaded[encoder]

    def users(self, limit: int, offset: int) -> list[dict]:
        test = self.data.split("test")
        titles = self.data.titles
        rows = []
        for row in test.iloc[offset : offset + limit].itertuples():
            history = [int(i) for i in row.history]
            rows.append({"row": int(row.Index), "user": int(row.user), "history": history,
                         "history_titles": [titles[i] for i in history], "target": int(row.target),
                         "target_title": titles[int(row.target)]})  # fmt: skip
        return rows

    def neighbours(self, item: int, k: int) -> dict:
        """Per text encoder, the ``k`` items nearest ``item`` by centred cosine (as the knn baseline)."""
        out = {}
        for enc in self.encoders:
            unit = self._unit(enc)
            if unit is None:
                continue
            scores = unit @ unit[item]
            scores[[0, item]] = float("-inf")
            top = torch.topk(scores, min(k, self.data.num_items - 1))
            out[enc] = [{"item_id": int(i), "title": self.data.titles[int(i)], "score": float(v)}
                        for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]  # fmt: skip
        return out

    def _unit(self, encoder: str):
        """The catalogue's centred unit vectors of ``encoder`` (None for ID-only), computed once."""
        if encoder not in self._units:
            from llm2rec.seqrec.baselines import centred_unit_vectors

            rec = self.get(encoder)
            vectors = (
                rec.model.item_encoder.vectors[: self.data.num_items + 1]
                if rec.cfg.item_repr != "id"
                else None
            )
            self._units[encoder] = None if vectors is None else centred_unit_vectors(vectors.detach().cpu())
        return self._units[encoder]


def create_app(service: RunService):
    from fastapi import FastAPI, HTTPException
    from fastapi.responses import HTMLResponse

    app = FastAPI(title="llm2rec", docs_url="/api/docs")

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/rows")
    def rows() -> dict:
        return {"encoders": service.encoders, "recommender": service.recommender,
                "items": service.data.num_items, "test_users": len(service.data.split("test"))}  # fmt: skip

    @app.get("/api/users")
    def users(limit: int = 20, offset: int = 0) -> list[dict]:
        return service.users(max(1, min(limit, 200)), max(0, offset))

    @app.post("/api/recommend")
    def recommend(req: RecommendRequest) -> dict:
        chosen = req.encoders or service.encoders
        unknown = [e for e in chosen if e not in service.encoders]
        if unknown:
            raise HTTPException(404, f"no saved {service.recommender} for {unknown}; have {service.encoders}")
        out = {}
        for enc in chosen:
            try:
                recs = service.get(enc).recommend(req.history, req.k, req.exclude_history)
            except USER_ERRORS as exc:
                out[enc] = {"error": str(exc)}
                continue
            out[enc] = {"items": [{"item_id": r.item_id, "title": r.title, "score": r.score, "new": r.new}
                                  for r in recs]}  # fmt: skip
        return out

    @app.get("/api/neighbours")
    def neighbours(item: int, k: int = 10) -> dict:
        if not 1 <= item <= service.data.num_items:
            raise HTTPException(404, f"item {item} is not in 1..{service.data.num_items}")
        return service.neighbours(item, max(1, min(k, 100)))

    return app


def serve(
    run_dir, host: str = "127.0.0.1", port: int = 8000, recommender: str = "sasrec", dataset=None
) -> None:
    import uvicorn

    uvicorn.run(create_app(RunService(run_dir, recommender, dataset)), host=host, port=port, log_level="info")
