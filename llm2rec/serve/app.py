"""``llm2rec serve RUN_DIR``: a small local web page over a finished run (FastAPI; plain HTML and JS).

Pick a user of the test split (their history, the true next item marked) or type a history, and see each
encoder's top-k side by side, and an item's nearest neighbours under each encoder's vectors. The JSON API:

``GET /api/rows``                      the encoders with a saved recommender, the dataset's size, the limits
``GET /api/users?limit=&offset=``      test-split users: history ids and titles, the true next item
``POST /api/recommend``                ``{"history": [...], "k": 10, "encoders": [...], "exclude_history": false}``
                                       → ``{"history": [how each entry was read], "encoders": {name: {"items":
                                       [...]} or {"error": "..."}}}``
``GET /api/neighbours?item=&k=``       per encoder, the ``k`` items nearest ``item`` (centred cosine)

A history entry is read as :mod:`llm2rec.serve.history` says (a JSON number is an item id; ``id:12``,
``key:B00004Z5M1``, ``title:...``; a bare text is a known key, else a known title, else a new title). A
new title is embedded for its own request only: the server's catalogue never changes. Bounds, refused
with a 4xx and ``{"detail": "<message>"}``: at most ``MAX_HISTORY`` entries of at most
``MAX_ENTRY_CHARS`` characters, at most ``MAX_NEW_TITLES`` distinct new titles, ``1 ≤ k ≤ min(MAX_K,
catalogue size)``, ids in 1..N, keys that exist, encoders the run has. The requests run on a thread pool
over shared, read-only recommenders (see :mod:`llm2rec.serve.recommender`).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from llm2rec.errors import USER_ERRORS, ConfigError

PAGE = Path(__file__).with_name("page.html")
MAX_HISTORY = 200  # entries per request (the recommender reads the last max_history of them)
MAX_ENTRY_CHARS = 500  # characters per entry (a title, key:..., id:...)
MAX_NEW_TITLES = 10  # distinct titles not in the catalogue, per request (each one is embedded)
MAX_K = 100  # items per encoder (and never more than the catalogue holds)


class RecommendRequest(BaseModel):
    """The body of ``POST /api/recommend`` (module level: FastAPI resolves it by name)."""

    model_config = ConfigDict(extra="forbid")

    history: list[StrictInt | str] = Field(
        min_length=1,
        max_length=MAX_HISTORY,
        description="Oldest first: item ids (numbers), 'id:12', 'key:B00004Z5M1', 'title:...' or a bare "
        "key or title; a title the catalogue lacks is a new title, embedded for this request only.",
    )
    k: int = Field(10, ge=1, le=MAX_K, description="Items per encoder (at most the catalogue's size).")
    encoders: list[str] | None = Field(None, max_length=64, description="Default: every encoder.")
    exclude_history: bool = Field(False, description="Leave out every item of the history.")

    @field_validator("history")
    @classmethod
    def _entries_are_short(cls, history: list) -> list:
        for i, entry in enumerate(history):
            if isinstance(entry, str) and len(entry) > MAX_ENTRY_CHARS:
                raise ValueError(
                    f"entry {i} has {len(entry)} characters; at most {MAX_ENTRY_CHARS} characters per entry"
                )
        return history


class RunService:
    """The recommenders of one run (one per encoder, all loaded at start) and its test users. Nothing
    here changes after ``__init__``: concurrent requests share it read-only."""

    def __init__(self, run_dir: str | Path, recommender: str = "sasrec", dataset: str | None = None):
        from llm2rec.serve.recommender import Recommender, available_rows

        self.run_dir, self.recommender, self.dataset = Path(run_dir), recommender, dataset
        suffix = f"-{recommender}"
        self.encoders = [r[: -len(suffix)] for r in available_rows(run_dir, dataset) if r.endswith(suffix)]
        if not self.encoders:
            raise FileNotFoundError(f"{run_dir} has no saved {recommender} model to serve")
        self._loaded = {e: Recommender.load(run_dir, e, recommender, dataset=dataset) for e in self.encoders}
        self.data = self._loaded[self.encoders[0]].dataset
        self._units = {e: self._unit_vectors(e) for e in self.encoders}

    def get(self, encoder: str):
        return self._loaded[encoder]

    @property
    def limits(self) -> dict:
        return {"history": MAX_HISTORY, "entry_chars": MAX_ENTRY_CHARS, "new_titles": MAX_NEW_TITLES,
                "k": min(MAX_K, self.data.num_items)}  # fmt: skip

    def read_history(self, history: list) -> list:
        """How each entry is read (the same catalogue for every encoder of a run); a ConfigError for an
        entry that names no item, or more new titles than ``MAX_NEW_TITLES``."""
        from llm2rec.serve.history import norm_title

        entries = self.get(self.encoders[0]).read_history(history)
        new = {norm_title(e.title) for e in entries if e.kind == "new"}
        if len(new) > MAX_NEW_TITLES:
            raise ConfigError(
                f"{len(new)} new titles (not in the catalogue); at most {MAX_NEW_TITLES} new titles per request"
            )
        return entries

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
        import torch

        out = {}
        for enc, unit in self._units.items():
            if unit is None:
                continue
            scores = unit @ unit[item]
            scores[[0, item]] = float("-inf")
            top = torch.topk(scores, min(k, self.data.num_items - 1))
            out[enc] = [{"item_id": int(i), "title": self.data.titles[int(i)], "score": float(v)}
                        for v, i in zip(top.values.tolist(), top.indices.tolist(), strict=True)]  # fmt: skip
        return out

    def _unit_vectors(self, encoder: str):
        """The catalogue's centred unit vectors of ``encoder`` (None for ID-only)."""
        from llm2rec.seqrec.baselines import centred_unit_vectors

        rec = self.get(encoder)
        if rec.cfg.item_repr == "id":
            return None
        return centred_unit_vectors(rec.model.item_encoder.vectors[: self.data.num_items + 1].detach().cpu())

    def recommend(self, req: RecommendRequest, chosen: list[str]) -> dict:
        entries = self.read_history(req.history)
        out = {}
        for enc in chosen:
            try:
                ranking = self.get(enc).rank(req.history, req.k, req.exclude_history)
            except USER_ERRORS as exc:  # e.g. an ID-only row and a new title: the other rows still answer
                out[enc] = {"error": str(exc)}
                continue
            out[enc] = {"items": [{"item_id": r.item_id, "title": r.title, "score": r.score, "new": r.new}
                                  for r in ranking.items]}  # fmt: skip
        return {"history": [e.as_dict() for e in entries], "encoders": out}


def _message(errors) -> str:
    """Pydantic's validation errors as one line: ``history.3: String should have at most ...``."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query"))
        where = (
            where.replace(".int", "").replace(".str", "").replace(".function-after[_entries_are_short()]", "")
        )
        line = f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid"))
        if line not in parts:
            parts.append(line)
    return "; ".join(parts)


def create_app(service: RunService):
    from fastapi import FastAPI, HTTPException, Query
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse

    app = FastAPI(title="llm2rec", docs_url="/api/docs", description=__doc__)

    @app.exception_handler(RequestValidationError)
    def invalid(_request, exc: RequestValidationError):
        return JSONResponse({"detail": _message(exc.errors())}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return PAGE.read_text(encoding="utf-8")

    @app.get("/api/rows")
    def rows() -> dict:
        return {"encoders": service.encoders, "recommender": service.recommender,
                "items": service.data.num_items, "test_users": len(service.data.split("test")),
                "limits": service.limits}  # fmt: skip

    @app.get("/api/users")
    def users(limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0)) -> list[dict]:
        return service.users(limit, offset)

    @app.post("/api/recommend")
    def recommend(req: RecommendRequest) -> dict:
        chosen = list(dict.fromkeys(req.encoders or service.encoders))
        unknown = [e for e in chosen if e not in service.encoders]
        if unknown:
            raise HTTPException(404, f"no saved {service.recommender} for {unknown}; have {service.encoders}")
        if req.k > service.data.num_items:
            n = service.data.num_items
            raise HTTPException(
                422, f"k: at most the catalogue's size (the catalogue has {n} items), not {req.k}"
            )
        try:
            return service.recommend(req, chosen)
        except ConfigError as exc:  # an entry that names no item, too many new titles
            raise HTTPException(422, f"history: {exc}") from exc

    @app.get("/api/neighbours")
    def neighbours(item: int, k: int = Query(10, ge=1, le=MAX_K)) -> dict:
        if not 1 <= item <= service.data.num_items:
            raise HTTPException(404, f"item {item} is not in 1..{service.data.num_items}")
        return service.neighbours(item, k)

    return app


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (127.0.0.0/8, ::1) or ``localhost``."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[] ")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def serve(
    run_dir,
    host: str = "127.0.0.1",
    port: int = 8000,
    recommender: str = "sasrec",
    dataset=None,
    *,
    allow_remote: bool = False,
) -> None:
    """Run the page with uvicorn. Only a loopback ``host`` unless ``allow_remote`` (the page has no
    authentication: whoever reaches the port can query the run)."""
    import uvicorn

    if not is_loopback(host) and not allow_remote:
        raise ConfigError(f"{host} is not a loopback address: the page has no authentication; "
                          "pass allow_remote=True (--allow-remote) to listen there anyway")  # fmt: skip
    uvicorn.run(create_app(RunService(run_dir, recommender, dataset)), host=host, port=port, log_level="info")
