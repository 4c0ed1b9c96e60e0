"""Running a planned pipeline: skip what is up to date, resume what was interrupted, redo what changed.

``RUN/pipeline.json`` records, per stage, the fingerprint it last started and whether it finished. On a
re-run a stage is

* skipped when it finished with the same fingerprint (nothing it depends on changed);
* resumed when it started with the same fingerprint but did not finish — the training stages pick up
  from their last checkpoint (their ``resume``), the others simply run again;
* started afresh (its old output removed) when its fingerprint changed or ``--force`` names it or a
  stage upstream of it. A recommender stage whose seeds changed keeps the seeds it already finished
  with the same settings and vectors and trains only the new ones.
"""

from __future__ import annotations

import json
import logging
import os
import time
from datetime import timedelta
from pathlib import Path

from llm2rec.config import all_inputs
from llm2rec.data.prepare import check_spec
from llm2rec.errors import ConfigError
from llm2rec.io import atomic_write_json, work_dir_for
from llm2rec.outdir import check_output, remove_output, write_marker
from llm2rec.pipeline import actions
from llm2rec.pipeline.layout import RUN_FILES, RunLayout
from llm2rec.pipeline.plan import DATASET, SEQREC, Stage, plan_stages

log = logging.getLogger(__name__)

RUN_KIND = "run"  # what the output marker of a run directory says (llm2rec.outdir)
# Waits at a barrier can be long: every process waits there while the main one prepares the dataset.
BARRIER_TIMEOUT = timedelta(hours=6)


class Pipeline:
    def __init__(self, cfg: dict, run_dir: str | Path, force: list[str] | None = None):
        self.cfg = cfg
        self.layout = RunLayout(Path(run_dir))
        self.run_dir = self.layout.root
        self.force = set(force or [])
        # Before anything is written: the run dir is new, empty or a previous run, and holds no input.
        check_output(self.run_dir, RUN_KIND, overwrite=False, reuse=True, inputs=all_inputs(cfg),
                     legacy=("pipeline.json",))  # fmt: skip
        for spec in _dataset_specs(cfg):
            check_spec(spec)  # a config the prepare stage would refuse creates no run directory
        self.stages = plan_stages(cfg, self.layout)
        unknown = self.force - set(self.stages) - {"embed", "seqrec"}
        if unknown:
            raise ConfigError(
                f"--force: unknown stage(s) {sorted(unknown)}; stages: {', '.join(self.stages)}"
            )

    # ------------------------------------------------------------------------------------------ state

    def load_state(self) -> dict:
        if self.layout.state.is_file():
            return json.loads(self.layout.state.read_text(encoding="utf-8"))
        return {}

    def _save_state(self, state: dict) -> None:
        atomic_write_json(self.layout.state, state)

    def _forced(self, stage: Stage) -> bool:
        family = stage.name.split(":")[0]
        if stage.name in self.force or family in self.force:
            return True
        return any(self._forced(self.stages[d]) for d in stage.deps)

    # ---------------------------------------------------------------------------------------- running

    def run(self) -> dict | None:
        """Run every stage that is not up to date; returns the results (None on processes other than the
        main one when launched with several: they train and embed, the main process does the rest)."""
        from llm2rec.distributed import Processes

        procs = Processes(BARRIER_TIMEOUT)
        if procs.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_marker(self.run_dir, RUN_KIND, files=RUN_FILES)
            atomic_write_json(self.layout.config, self.cfg)
        procs.wait()
        state = self.load_state()
        workers = int(self.cfg["seqrec"].get("workers", 1))
        # With workers > 1, seqrec jobs go to a process pool as soon as their vectors exist, and run
        # while the main process goes on with the next (training) stages.
        pool = _process_pool(workers) if workers > 1 and procs.main else None
        if pool is not None and not procs.many:
            _leave_cores_for(workers)
        try:
            finished_all = self._run_data_then_rest(state, procs, pool)
        finally:
            if pool is not None:
                pool.shutdown(cancel_futures=True)
        self.force.clear()  # forcing applies to one run only
        if not finished_all or not procs.main:
            return None
        from llm2rec.pipeline.report import write_report
        from llm2rec.pipeline.results import collect_results

        results = collect_results(self)
        write_report(self.run_dir)
        return results

    def _run_data_then_rest(self, state: dict, procs, pool) -> bool:
        """The dataset stages first, one at a time, planning again after each: what a stage downstream of a
        dataset hashes is the content of that dataset (its tables), known only once it is built."""
        for name in [s.name for s in self.stages.values() if s.kind == DATASET]:
            self._run_stages([self.stages[name]], state, procs, pool)
            procs.wait()
            self.stages = plan_stages(self.cfg, self.layout)
        stages = self._recommenders_last() if procs.many else list(self.stages.values())
        return self._run_stages([s for s in stages if s.kind != DATASET], state, procs, pool)

    def _run_stages(self, stages: list[Stage], state: dict, procs, pool) -> bool:
        """Run ``stages`` in order; False when this process leaves early (the recommenders are the main
        process's)."""
        futures = {}
        for stage in stages:
            if procs.many and not procs.main and stage.kind == SEQREC:
                return False
            resume = self._needs_run(stage, state, remove=procs.main)
            if resume is None:
                continue
            self._start(stage, state, resume, save=procs.main)
            if pool is not None and stage.kind == SEQREC:
                futures[pool.submit(actions.seqrec_job, *actions.seqrec_args(self, stage))] = stage
                continue
            t0 = time.perf_counter()
            if procs.main or stage.every_process:
                stage.action(self, stage, resume)
            if stage.kind != SEQREC:  # (the others have left before the recommenders)
                release_memory()
                procs.wait()
            self._finish(stage, state, time.perf_counter() - t0, save=procs.main)
            # Record jobs that finished meanwhile, so an interruption does not re-run them.
            for future in [f for f in futures if f.done()]:
                self._finish(futures.pop(future), state, future.result())
        for future in _as_completed(futures):
            self._finish(futures[future], state, future.result())
        return True

    def _recommenders_last(self) -> list[Stage]:
        """The stages with every recommender moved to the end (still a valid order: nothing depends on a
        recommender). Launched with several processes, the main one trains the recommenders alone after
        the others have left, so no process waits at a barrier for hours."""
        stages = list(self.stages.values())
        return [s for s in stages if s.kind != SEQREC] + [s for s in stages if s.kind == SEQREC]

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
        if remove and not resume and (stage.kind != SEQREC or self._forced(stage)):
            _remove(stage.output)
        return resume

    def _start(self, stage: Stage, state: dict, resume: bool, save: bool = True) -> None:
        log.info("stage %s: %s", stage.name, "resuming" if resume else "running")
        previous = _seconds_before(stage, state.get(stage.name, {})) if resume else 0.0
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

    # ------------------------------------------------------------------------------------- hand-offs

    def model_dir(self, source: str) -> str:
        """The model a training stage hands on (its chosen checkpoint), or the backbone."""
        if source == "backbone":
            return self.cfg["model"]
        from llm2rec.llm.backbone import resolve_model_dir

        return resolve_model_dir(self.stages[source].output)

    def embeddings_path(self, encoder: str, dataset: str | None = None) -> Path | None:
        if encoder == "id":
            return None
        return self.stages[f"embed:{encoder}@{dataset}" if dataset else f"embed:{encoder}"].output

    def dataset_dir(self, stage: Stage) -> Path:
        """The prepared dataset a per-dataset stage (embedding, recommender) reads."""
        name = stage.extra.get("dataset")
        return self.layout.source_dataset(name) if name else self.layout.dataset


def _seconds_before(stage: Stage, record: dict) -> float:
    """The wall time a resumed stage already spent: the attempts before the one that was interrupted,
    plus the interrupted one up to the last file it wrote (its last checkpoint or finished part). The
    steps after that file were lost and are counted again in the attempt that redoes them."""
    before = record.get("wall_seconds_before", 0.0)
    started = record.get("started")
    if started is None:
        return before
    last_write = max(_newest_mtime(stage.output), _newest_mtime(work_dir_for(stage.output)))
    return before + max(0.0, last_write - started)


def _newest_mtime(path: Path) -> float:
    if not path.exists():
        return 0.0
    if path.is_file():
        return path.stat().st_mtime
    return max((f.stat().st_mtime for f in path.rglob("*") if f.is_file()), default=path.stat().st_mtime)


def _remove(path: Path) -> None:
    """Remove a stage's output and its side files (training stages keep checkpoints in ``<out>.work``),
    each only when llm2rec wrote it (:func:`llm2rec.outdir.remove_output` refuses anything else)."""
    from llm2rec.data.vectors import metadata_path

    remove_output(path)
    if work_dir_for(path).exists():
        remove_output(work_dir_for(path))
    if path.suffix == ".npy":
        metadata_path(path).unlink(missing_ok=True)


def _dataset_specs(cfg: dict) -> list[dict]:
    from llm2rec.config import is_multi

    return list(cfg["datasets"].values()) if is_multi(cfg) else [cfg["dataset"]]


def release_memory() -> None:
    """Hand a finished stage's memory back before the next one starts. Its model, optimizer and
    activations are garbage once the stage returns, but reference cycles keep them until a collection,
    and glibc keeps freed heap pages in the process unless asked: one process that trained CSFT, MNTP and
    the contrastive stage grew to the machine's 24 GB and was killed (docs/results.md, issue 13)."""
    import ctypes
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")  # only a process that loaded torch has a CUDA cache to empty
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to trim
        pass


def _process_pool(workers: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    root = logging.getLogger()
    levels = (root.level, logging.getLogger("llm2rec").level) if root.handlers else None
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_worker_logging, initargs=(levels,))  # fmt: skip


def _worker_logging(levels: tuple[int, int] | None) -> None:
    """A spawned worker starts with logging unconfigured: log as the main process does (``llm2rec run``
    configures INFO), so a recommender's progress lines (:mod:`llm2rec.seqrec.progress`) show."""
    if levels is None:
        return
    if not logging.getLogger().handlers:
        logging.basicConfig(level=levels[0], format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("llm2rec").setLevel(levels[1])


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


def run_pipeline(cfg: dict, run_dir: str | Path, force: list[str] | None = None) -> dict | None:
    """Plan and run the pipeline ``cfg`` describes in ``run_dir``; see :mod:`llm2rec.pipeline`."""
    return Pipeline(cfg, run_dir, force).run()
