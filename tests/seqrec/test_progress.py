"""A recommender's training logs its progress when no bar shows it, as under `llm2rec run` (issue 36 §4)."""

from __future__ import annotations

import logging

import llm2rec.seqrec.trainer as trainer
from llm2rec.seqrec.data import SeqRecData
from llm2rec.seqrec.progress import EvalLog, duration, progress_label
from tests.seqrec.test_trainer import _small_sasrec

PROGRESS = "llm2rec.seqrec.progress"


def _lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == PROGRESS]


def test_fit_without_a_bar_logs_epoch_valid_metric_best_and_eta(cyclic_dataset, monkeypatch, caplog):
    data = SeqRecData.from_dataset(cyclic_dataset)
    scripted = iter([0.1, 0.5, 0.3, 0.2, 0.4])
    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: {"recall@20": next(scripted)})
    cfg = trainer.TrainConfig(epochs=50, patience=3, progress=False)
    with caplog.at_level(logging.INFO, logger=PROGRESS), progress_label("seqrec/llm2rec-sasrec"):
        trainer.fit(_small_sasrec(data), data, cfg, seed=7)
    lines = _lines(caplog)
    # a fast run: the first evaluation and the last one (early stop after epoch 5); epoch 2's new best came
    # less than 5 s after the first line
    assert len(lines) == 2, lines
    first, last = lines
    assert first.startswith("seqrec/llm2rec-sasrec seed 7: epoch 1/50, loss ")
    assert "valid recall@20 0.1000 (new best)" in first and "s/epoch" in first
    assert "stops by epoch 4 (ETA" in first and "by epoch 50 (ETA" in first
    assert "epoch 5/50" in last and "valid recall@20 0.4000 (best 0.5000 at epoch 2)" in last
    assert "last evaluation" in last


def test_a_progress_bar_replaces_the_lines(cyclic_dataset, caplog):
    data = SeqRecData.from_dataset(cyclic_dataset)
    with caplog.at_level(logging.INFO, logger=PROGRESS):
        trainer.fit(_small_sasrec(data), data, trainer.TrainConfig(epochs=2, progress=True), seed=0)
    assert _lines(caplog) == []


class _Clock:
    def __init__(self, times):
        self.times = iter(times)

    def __call__(self):
        return next(self.times)


def test_lines_are_rate_limited_except_first_new_best_and_last(caplog):
    cfg = trainer.TrainConfig(epochs=7, patience=100)
    # construction at t=0, then one evaluation per epoch at these times
    lines = EvalLog(cfg, seed=0, clock=_Clock([0, 10, 20, 30, 40, 55, 56, 57]))
    evaluations = [  # (score, best score, best epoch) after epochs 1..7
        (0.1, 0.1, 1), (0.2, 0.2, 2), (0.1, 0.2, 2), (0.1, 0.2, 2), (0.1, 0.2, 2), (0.3, 0.3, 6), (0.1, 0.3, 6),
    ]  # fmt: skip
    with caplog.at_level(logging.INFO, logger=PROGRESS):
        logged = [
            lines.evaluated(epoch, 1.0, score, best, at, last=epoch == 7)
            for epoch, (score, best, at) in enumerate(evaluations, start=1)
        ]
    # 1: first; 2: new best 10 s after; 3, 4: 10 and 20 s; 5: 35 s; 6: new best only 1 s after; 7: the last
    assert logged == [True, True, False, False, True, False, True]
    assert len(_lines(caplog)) == 4
    assert "11.0 s/epoch; ETA 22 s" in _lines(caplog)[-2]  # epoch 5 of 7 after 55 s: 2 epochs left
    assert "last evaluation, 57 s in all" in _lines(caplog)[-1]


def test_durations():
    assert [duration(s) for s in (4.4, 65, 7260)] == ["4 s", "1m05s", "2h01m"]


def test_a_pool_worker_logs_like_the_main_process(caplog, capfd):
    from llm2rec.pipeline.runner import _process_pool

    caplog.set_level(logging.INFO)  # as `llm2rec run` configures it
    with _process_pool(1) as pool:
        pool.submit(_log_progress_line).result(timeout=120)
    assert "INFO llm2rec.seqrec.progress: a worker's line" in capfd.readouterr().err


def _log_progress_line() -> None:
    logging.getLogger(PROGRESS).info("a worker's line")


def test_the_pipelines_recommender_stage_logs_its_progress(cyclic_dataset, tmp_path, caplog):
    # `llm2rec run` trains each recommender through actions.seqrec_job, with progress=False
    from llm2rec.pipeline.actions import seqrec_job

    out = tmp_path / "run" / "seqrec" / "id-sasrec"
    options = {"epochs": 2, "hidden": 16, "layers": 1, "heads": 1, "plots": False}
    with caplog.at_level(logging.INFO, logger=PROGRESS):
        seqrec_job(cyclic_dataset.root, "sasrec", None, [3], out, options, threads=None)
    lines = _lines(caplog)
    assert lines and all(line.startswith("seqrec/id-sasrec seed 3: epoch ") for line in lines)
    assert "epoch 2/2" in lines[-1] and "last evaluation" in lines[-1]
