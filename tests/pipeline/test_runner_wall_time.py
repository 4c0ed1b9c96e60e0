"""A stage resumed after its process died counts the time the dead attempt spent up to its last write."""

from __future__ import annotations

import os
import time

from llm2rec.io import work_dir_for
from llm2rec.pipeline import runner
from llm2rec.pipeline.plan import TRAINING, Stage


def _stage(tmp_path) -> Stage:
    return Stage(name="csft", kind=TRAINING, deps=[], settings={}, output=tmp_path / "csft", action=print)


def _checkpoint_written_at(stage: Stage, when: float) -> None:
    ckpt = work_dir_for(stage.output) / "checkpoints" / "step-000160" / "model.safetensors"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    os.utime(ckpt, (when, when))


def test_the_interrupted_attempt_counts_up_to_its_last_checkpoint(tmp_path):
    stage, started = _stage(tmp_path), time.time() - 5000.0
    _checkpoint_written_at(stage, started + 2000.0)  # the steps after it were lost and are redone
    record = {"status": "started", "started": started, "wall_seconds_before": 300.0}
    assert abs(runner._seconds_before(stage, record) - 2300.0) < 1e-3


def test_an_attempt_that_wrote_nothing_counts_nothing(tmp_path):
    stage, started = _stage(tmp_path), time.time()
    _checkpoint_written_at(stage, started - 1000.0)  # left by an older attempt, already counted
    record = {"status": "started", "started": started, "wall_seconds_before": 300.0}
    assert runner._seconds_before(stage, record) == 300.0
    assert runner._seconds_before(stage, {"status": "started"}) == 0.0


def test_the_finished_record_adds_the_earlier_attempts(tmp_path):
    stage, started = _stage(tmp_path), time.time() - 5000.0
    _checkpoint_written_at(stage, started + 2000.0)
    state = {
        "csft": {"fingerprint": "f", "status": "started", "started": started, "wall_seconds_before": 0.0}
    }
    runner.Pipeline._start(None, stage, state, resume=True, save=False)  # save=False: no self needed
    runner.Pipeline._finish(None, stage, state, seconds=3600.0, save=False)
    assert state["csft"]["status"] == "done"
    assert abs(state["csft"]["wall_seconds"] - 5600.0) < 0.01
