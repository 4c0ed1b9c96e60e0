"""``llm2rec run``: prepare → csft → mntp → contrastive → embed → seqrec → report, resumable.

Every stage has a *fingerprint*: a hash of its own settings and of its upstream stages' fingerprints
(the dataset stage also hashes its input files' contents; a training stage hashes its preset *resolved*
with the run's overrides, less display-only settings, so editing a preset in code re-runs it).
``RUN/pipeline.json`` records, per stage, the fingerprint it last started and whether it finished.
On a re-run a stage is

* skipped when it finished with the same fingerprint (nothing it depends on changed);
* resumed when it started with the same fingerprint but did not finish — the training stages pick up
  from their last checkpoint (their ``resume``), the others simply run again;
* started afresh (its old output removed) when its fingerprint changed or ``--force`` names it or a
  stage upstream of it. A recommender stage whose seeds changed keeps the seeds it already finished
  with the same settings and vectors and trains only the new ones.

Layout of a run directory::

    RUN/dataset/                the prepared dataset
    RUN/csft/ mntp/ contrastive/   the plain HF model each training stage hands on
    RUN/<stage>.work/           its checkpoints and training state while it runs
    RUN/embeddings/<encoder>.npy (+ .json)
    RUN/seqrec/<encoder>-<model>/   the seqrec results dir of one encoder × recommender
    RUN/results.json  report.md  report.html  plots/
    RUN/pipeline.json           stage records (fingerprints, status, wall time)
    RUN/input_hashes.json       sha256 of the input files, cached by path, size and mtime
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from llm2rec.config import ENCODERS
from llm2rec.errors import ConfigError
from llm2rec.io import atomic_write_json, sha256_file, work_dir_for

log = logging.getLogger(__name__)

# Which trained model each LLM encoder reads, and how it pools.
ENCODER_SOURCE = {
    "raw-last": ("backbone", "last", False),
    "raw-mean": ("backbone", "mean", True),
    "csft": ("csft", "mean", True),
    "csft-mntp": ("mntp", "mean", True),
    "llm2rec": ("contrastive", "mean", True),
}
TRAINING_CHAIN = ("csft", "mntp", "contrastive")


def fingerprint(payload) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Stage:
    name: str
    deps: list[str]
    settings: dict
    output: Path
    action: Callable[[Pipeline, Stage, bool], None]  # (pipeline, stage, resume) -> None
    fingerprint: str = ""
    extra: dict = field(default_factory=dict)
    # Under torchrun / accelerate launch: run by every process (training, embedding), else by the main one.
    every_process: bool = False


class Pipeline:
    def __init__(self, cfg: dict, run_dir: str | Path, force: list[str] | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.force = set(force or [])
        self.state_path = self.run_dir / "pipeline.json"
        self.stages = self._plan()
        unknown = self.force - set(self.stages) - {"embed", "seqrec"}
        if unknown:
            raise ConfigError(
                f"--force: unknown stage(s) {sorted(unknown)}; stages: {', '.join(self.stages)}"
            )

    # ------------------------------------------------------------------------------------------- planning

    def _plan(self) -> dict[str, Stage]:
        cfg, out = self.cfg, self.run_dir
        stages: dict[str, Stage] = {}

        def add(stage: Stage) -> None:
            upstream = [stages[d].fingerprint for d in stage.deps]
            stage.fingerprint = fingerprint(
                {"name": stage.name, "settings": stage.settings, "deps": upstream}
            )
            stages[stage.name] = stage

        inputs = _input_signature(cfg["dataset"]["input"], out / "input_hashes.json")
        add(Stage("dataset", [], {**cfg["dataset"], "inputs": inputs},
                  out / "dataset", _run_prepare))  # fmt: skip
        # Cheap encoders first, each followed by its recommenders, so their results (and, with
        # seqrec.workers > 1, their seqrec jobs) do not wait for the LLM training stages.
        depth = {"id": -2, "st": -1, "backbone": -1, **{n: i for i, n in enumerate(TRAINING_CHAIN)}}
        encoders = sorted(cfg["encoders"], key=lambda e: depth[_source(e)])
        for enc in encoders:
            source = _source(enc)
            for name in TRAINING_CHAIN[: max(depth[source] + 1, 0)]:
                if name not in stages:
                    add(self._training_stage(name))
            if enc != "id":
                settings = {
                    "encoder": enc,
                    "embed": cfg["embed"],
                    "model": cfg["model"] if source == "backbone" else None,
                }
                deps = ["dataset"] + ([source] if source in TRAINING_CHAIN else [])
                add(Stage(f"embed:{enc}", deps, settings, out / "embeddings" / f"{enc}.npy", _run_embed,
                          extra={"encoder": enc}, every_process=True))  # fmt: skip
            for model in cfg["seqrec"]["models"]:
                if not _pairs_with(model, enc, first=enc == encoders[0]):
                    continue
                deps = ["dataset"] + ([] if enc == "id" else [f"embed:{enc}"])
                settings = {
                    "model": model,
                    "seeds": cfg["seqrec"]["seeds"],
                    "options": cfg["seqrec"]["options"],
                }
                add(Stage(f"seqrec:{enc}:{model}", deps, settings, out / "seqrec" / f"{enc}-{model}", _run_seqrec,
                          extra={"encoder": enc, "model": model}))  # fmt: skip
        return stages

    def _training_stage(self, name: str) -> Stage:
        i = TRAINING_CHAIN.index(name)
        deps = ["dataset"] + ([TRAINING_CHAIN[i - 1]] if i else [])
        # The resolved settings, not the preset's name: editing a preset re-runs the stages it feeds.
        settings = {"config": _stage_identity(name, self.cfg["preset"], self.cfg[name])}
        if name == "csft":
            settings["model"] = self.cfg["model"]
        return Stage(name, deps, settings, self.run_dir / name, _run_training, every_process=True)

    def _forced(self, stage: Stage) -> bool:
        family = stage.name.split(":")[0]
        if stage.name in self.force or family in self.force:
            return True
        return any(self._forced(self.stages[d]) for d in stage.deps)

    # -------------------------------------------------------------------------------------------- running

    def _load_state(self) -> dict:
        if self.state_path.is_file():
            return json.loads(self.state_path.read_text(encoding="utf-8"))
        return {}

    def _save_state(self, state: dict) -> None:
        atomic_write_json(self.state_path, state)

    def run(self) -> dict | None:
        """Run every stage that is not up to date; returns the results (None on processes other than the
        main one when launched with several: they train and embed, the main process does the rest)."""
        procs = _Processes()
        if procs.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            atomic_write_json(self.run_dir / "config.json", self.cfg)
        procs.wait()
        state = self._load_state()
        stages = self._recommenders_last() if procs.many else list(self.stages.values())
        workers = int(self.cfg["seqrec"].get("workers", 1))
        # With workers > 1, seqrec jobs go to a process pool as soon as their vectors exist, and run
        # while the main process goes on with the next (training) stages.
        pool = _process_pool(workers) if workers > 1 and procs.main else None
        if pool is not None and not procs.many:
            _leave_cores_for(workers)
        futures = {}
        try:
            for stage in stages:
                if procs.many and not procs.main and stage.action is _run_seqrec:
                    return None  # the rest is the main process's
                resume = self._needs_run(stage, state, remove=procs.main)
                if resume is None:
                    continue
                self._start(stage, state, resume, save=procs.main)
                if pool is not None and stage.action is _run_seqrec:
                    futures[pool.submit(_seqrec_job, *self._seqrec_args(stage))] = stage
                    continue
                t0 = time.perf_counter()
                if procs.main or stage.every_process:
                    stage.action(self, stage, resume)
                if stage.action is not _run_seqrec:  # (the others have left before the recommenders)
                    procs.wait()
                self._finish(stage, state, time.perf_counter() - t0, save=procs.main)
                # Record jobs that finished meanwhile, so an interruption does not re-run them.
                for future in [f for f in futures if f.done()]:
                    self._finish(futures.pop(future), state, future.result())
            for future in _as_completed(futures):
                self._finish(futures[future], state, future.result())
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        self.force.clear()  # forcing applies to one run only
        if not procs.main:
            return None
        results = collect_results(self)
        from llm2rec.report import write_report

        write_report(self.run_dir)
        return results

    def _recommenders_last(self) -> list[Stage]:
        """The stages with every recommender moved to the end (still a valid order: nothing depends on a
        recommender). Launched with several processes, the main one trains the recommenders alone after
        the others have left, so no process waits at a barrier for hours."""
        stages = list(self.stages.values())
        return [s for s in stages if s.action is not _run_seqrec] + [
            s for s in stages if s.action is _run_seqrec
        ]

    def _needs_run(self, stage: Stage, state: dict, remove: bool = True) -> bool | None:
        """None: up to date; otherwise whether to resume (True) or start afresh (False), in which case the
        old output is removed (by the main process only when launched with several)."""
        record = state.get(stage.name, {})
        same = record.get("fingerprint") == stage.fingerprint and not self._forced(stage)
        if same and record.get("status") == "done" and stage.output.exists():
            log.info("stage %s: up to date, skipped", stage.name)
            return None
        resume = same and record.get("status") == "started"
        # A recommender job keeps its output: run_seqrec(resume=True) reuses the seeds whose settings,
        # data and vectors are unchanged (adding a seed trains one more), unless the stage is forced.
        if remove and not resume and (stage.action is not _run_seqrec or self._forced(stage)):
            _remove(stage.output)
        return resume

    def _start(self, stage: Stage, state: dict, resume: bool, save: bool = True) -> None:
        log.info("stage %s: %s", stage.name, "resuming" if resume else "running")
        previous = state.get(stage.name, {}).get("wall_seconds_before", 0.0) if resume else 0.0
        state[stage.name] = {"fingerprint": stage.fingerprint, "status": "started", "started": time.time(),
                             "wall_seconds_before": previous}  # fmt: skip
        if save:
            self._save_state(state)

    def _finish(self, stage: Stage, state: dict, seconds: float, save: bool = True) -> None:
        record = state[stage.name]
        wall = seconds + record.pop("wall_seconds_before", 0.0)
        record.update(status="done", wall_seconds=round(wall, 2), finished=time.time())
        if save:
            self._save_state(state)

    def _seqrec_args(self, stage: Stage) -> tuple:
        s = self.cfg["seqrec"]
        emb = self.embeddings_path(stage.extra["encoder"])
        return (
            self.stages["dataset"].output,
            stage.extra["model"],
            emb,
            s["seeds"],
            stage.output,
            s["options"],
        )

    # ----------------------------------------------------------------------------------------- hand-offs

    def model_dir(self, stage_name: str) -> str:
        """The model a training stage hands on (its chosen checkpoint), or the backbone."""
        if stage_name == "backbone":
            return self.cfg["model"]
        from llm2rec.train.mntp import resolve_model_dir

        return resolve_model_dir(self.stages[stage_name].output)

    def embeddings_path(self, encoder: str) -> Path | None:
        return None if encoder == "id" else self.stages[f"embed:{encoder}"].output


def _source(encoder: str) -> str:
    """What an encoder's vectors come from: id, st (sentence-transformers), backbone or a training stage."""
    return "id" if encoder == "id" else ENCODER_SOURCE.get(encoder, ("st",))[0]


def _pairs_with(model: str, encoder: str, first: bool) -> bool:
    """Whether recommender ``model`` runs on ``encoder``'s vectors: knn needs vectors (not id); pop and
    random ignore them, so they run once, with the first encoder."""
    from llm2rec.seqrec.pop import BASELINES, NEEDS_VECTORS

    if model in NEEDS_VECTORS:
        return encoder != "id"
    return first or model not in BASELINES


def _remove(path: Path) -> None:
    """Remove a stage's output and its side files (CSFT keeps checkpoints in ``<out>.work``)."""
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()
    shutil.rmtree(work_dir_for(path), ignore_errors=True)
    json_side = path.with_suffix(".json")
    if path.suffix == ".npy" and json_side.exists():
        json_side.unlink()


def _input_signature(inputs: list, cache_path: Path) -> list:
    """Content identity of the input files: relative name, size and sha256.

    Content, not mtime: a copied or re-mounted data directory must not invalidate a day of training. The
    hashes are cached in ``cache_path`` by (path, size, mtime), so unchanged inputs are hashed once.
    """
    try:
        cache = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cache = {}
    sig, fresh = [], {}
    for raw in inputs:
        root = Path(raw)
        files = sorted(q for q in root.rglob("*") if q.is_file()) if root.is_dir() else [root]
        for q in (f for f in files if f.exists()):
            stat = q.stat()
            key = f"{q.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
            fresh[key] = cache.get(key) or sha256_file(q)
            name = q.relative_to(root).as_posix() if root.is_dir() else q.name
            sig.append([name, stat.st_size, fresh[key]])
    if fresh != cache and cache_path.parent.is_dir():
        atomic_write_json(cache_path, fresh)
    return sig


# --------------------------------------------------------------------------------------- stage actions


def _run_prepare(pipe: Pipeline, stage: Stage, resume: bool) -> None:
    from llm2rec.data.commands import load_raw, parse_options
    from llm2rec.data.protocol import ProtocolSettings, prepare

    d = pipe.cfg["dataset"]
    settings = ProtocolSettings(
        d["kcore"],
        d["max_history"],
        d["split"],
        tuple(d["cutoffs"]),
        d["min_rating"],
        dedup=not d["keep_duplicates"],
    )
    settings.validate()
    options = d["options"] if isinstance(d["options"], dict) else parse_options(d["options"])
    raw = load_raw(d["format"], [Path(p) for p in d["input"]], d["skip_bad_lines"], dict(options),
                   d["split"] == "shipped", num_users=d["num_users"], num_items=d["num_items"], seed=d["seed"])  # fmt: skip
    prepare(raw, stage.output, settings, overwrite=True)


def _stage_identity(name: str, preset: str, overrides: dict) -> dict:
    """What decides a training stage's output: its preset resolved with the run's overrides."""
    import importlib

    from llm2rec.train.settings import identity

    module = importlib.import_module(f"llm2rec.train.{name}")
    return identity(module.build_config(preset, **overrides))


def _run_training(pipe: Pipeline, stage: Stage, resume: bool) -> None:
    dataset = pipe.stages["dataset"].output
    overrides = dict(pipe.cfg[stage.name])
    common = {"preset": pipe.cfg["preset"], "resume": resume, **overrides}
    if stage.name == "csft":
        from llm2rec.train.csft import run_csft

        run_csft(dataset, pipe.cfg["model"], stage.output, **common)
    elif stage.name == "mntp":
        from llm2rec.train.mntp import run_mntp

        run_mntp(pipe.model_dir("csft"), dataset, stage.output, **common)
    else:
        from llm2rec.train.contrastive import run_contrastive

        run_contrastive(pipe.model_dir("mntp"), dataset, stage.output, **common)


def _run_embed(pipe: Pipeline, stage: Stage, resume: bool) -> None:
    from llm2rec.embed import embed_items

    enc = stage.extra["encoder"]
    e = pipe.cfg["embed"]
    common = {"template": e["template"], "normalize": e["normalize"], "batch_size": e["batch_size"]}
    if enc == "minilm":
        embed_items("st:all-MiniLM-L6-v2", pipe.stages["dataset"].output, stage.output, **common)
        return
    source, pooling, bidirectional = ENCODER_SOURCE[enc]
    embed_items(pipe.model_dir(source), pipe.stages["dataset"].output, stage.output,
                pooling=pooling, bidirectional=bidirectional, **common)  # fmt: skip


def _run_seqrec(pipe: Pipeline, stage: Stage, resume: bool) -> None:
    _seqrec_job(*pipe._seqrec_args(stage), threads=None)


class _Processes:
    """This process among those ``torchrun`` / ``accelerate launch`` started (or alone under ``python``)."""

    # Waits at a barrier can be long: every process waits there while the main one prepares the dataset.
    TIMEOUT = timedelta(hours=6)

    def __init__(self):
        from llm2rec.distributed import launched_processes, process_state

        self.many = launched_processes() > 1
        self.state = process_state(self.TIMEOUT) if self.many else None
        self.main = self.state is None or self.state.is_main_process

    def wait(self) -> None:
        if self.state is not None:
            self.state.wait_for_everyone()


def _process_pool(workers: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))


def _leave_cores_for(workers: int) -> None:
    """Keep the main process's torch threads to the cores the pool's one-thread workers leave free:
    oversubscribed cores made training several times slower on a 2-core machine."""
    import torch

    spare = max(1, (os.cpu_count() or 1) - workers)
    if torch.get_num_threads() > spare:
        log.info("using %d torch thread(s) in the main process beside %d seqrec worker(s)", spare, workers)
        torch.set_num_threads(spare)


def _as_completed(futures: dict):
    from concurrent.futures import as_completed

    return as_completed(futures) if futures else []


def _seqrec_job(dataset, model, embeddings, seeds, out_dir, options, threads: int | None = 1) -> float:
    """One encoder × recommender run; module-level so a process pool can call it. Returns seconds."""
    import torch

    from llm2rec.seqrec import run_seqrec

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    run_seqrec(dataset, model=model, embeddings=embeddings, seeds=seeds, out_dir=out_dir, resume=True,
               **{"progress": False, **options})  # fmt: skip
    return time.perf_counter() - t0


# --------------------------------------------------------------------------------------------- results


def collect_results(pipe: Pipeline) -> dict:
    """One entry per encoder × recommender, metrics as in the seqrec contract; written to results.json."""
    entries = []
    for stage in pipe.stages.values():
        if not stage.name.startswith("seqrec:"):
            continue
        res = json.loads((stage.output / "results.json").read_text(encoding="utf-8"))
        entries.append(
            {
                "encoder": stage.extra["encoder"],
                "recommender": stage.extra["model"],
                "description": ENCODERS[stage.extra["encoder"]],
                "metrics": res["metrics"],
            }
        )
    state = pipe._load_state()
    manifest = json.loads((pipe.stages["dataset"].output / "manifest.json").read_text(encoding="utf-8"))
    results = {
        "dataset": {"source": manifest["source"]["format"], **manifest["counts"]},
        "model": pipe.cfg["model"],
        "preset": pipe.cfg["preset"],
        "seeds": pipe.cfg["seqrec"]["seeds"],
        "entries": entries,
        "stage_wall_seconds": {k: v.get("wall_seconds") for k, v in state.items()},
    }
    atomic_write_json(pipe.run_dir / "results.json", results)
    return results


def run_pipeline(cfg: dict, run_dir: str | Path, force: list[str] | None = None) -> dict | None:
    return Pipeline(cfg, run_dir, force).run()
