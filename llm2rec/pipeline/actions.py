"""What each kind of stage does when it runs: ``action(pipeline, stage, resume)``.

The planner (:mod:`llm2rec.pipeline.plan`) attaches one of these to every stage; the runner calls it.
Each action only translates the run config into the call of the library function that does the work.
"""

from __future__ import annotations

import time


def run_prepare(pipe, stage, resume: bool) -> None:
    from llm2rec.data.prepare import prepare_from_spec

    name = stage.extra.get("dataset")
    spec = pipe.cfg["datasets"][name] if name else pipe.cfg["dataset"]
    prepare_from_spec(spec, stage.output, overwrite=True)


def run_union(pipe, stage, resume: bool) -> None:
    """A multi-dataset run's training union (:mod:`llm2rec.data.mix`)."""
    from llm2rec.data.dataset import Dataset
    from llm2rec.data.mix import build_training_union

    mix = pipe.cfg["mix"]
    load = lambda name: Dataset.load(pipe.layout.source_dataset(name))  # noqa: E731
    build_training_union({n: load(n) for n in mix["train"]}, [load(n) for n in mix["evaluate"]], stage.output,
                         weights=mix["weights"], seed=mix["seed"], overwrite=True)  # fmt: skip


def run_training(pipe, stage, resume: bool) -> None:
    """One LLM stage, with the settings object the planner built (and fingerprinted) for it."""
    from llm2rec.train import UPSTREAM, training_stage_module
    from llm2rec.train.stage import run_stage

    source = pipe.model_dir(UPSTREAM[stage.name] or "backbone")
    # overwrite: the runner's fingerprints already decided whether this stage is redone or resumed
    run_stage(
        training_stage_module(stage.name).STAGE,
        source,
        pipe.layout.dataset,
        stage.output,
        stage.extra["config"],
        preset=pipe.cfg["preset"],
        resume=resume,
        overwrite=True,
    )


def run_embed(pipe, stage, resume: bool) -> None:
    from llm2rec.embed.extract import embed_items
    from llm2rec.embed.registry import SENTENCE_TRANSFORMERS, encoder_spec

    spec = encoder_spec(stage.extra["encoder"])
    e = pipe.cfg["embed"]
    common = {"template": e["template"], "normalize": e["normalize"], "batch_size": e["batch_size"],
              "overwrite": True}  # fmt: skip
    if spec.source == SENTENCE_TRANSFORMERS:
        embed_items(spec.model, pipe.dataset_dir(stage), stage.output, **common)
        return
    embed_items(pipe.model_dir(spec.source), pipe.dataset_dir(stage), stage.output,
                pooling=spec.pooling, bidirectional=spec.bidirectional, **common)  # fmt: skip


def run_seqrec(pipe, stage, resume: bool) -> None:
    seqrec_job(*seqrec_args(pipe, stage), threads=None)


def seqrec_args(pipe, stage) -> tuple:
    """The arguments of :func:`seqrec_job` for a recommender stage (plain values: they cross processes)."""
    s = pipe.cfg["seqrec"]
    return (
        pipe.dataset_dir(stage),
        stage.extra["model"],
        pipe.embeddings_path(stage.extra["encoder"], stage.extra.get("dataset")),
        s["seeds"],
        stage.output,
        stage.extra.get("options", s["options"]),
    )


def seqrec_job(dataset, model, embeddings, seeds, out_dir, options, threads: int | None = 1) -> float:
    """One encoder × recommender run; module-level so a process pool can call it. Returns seconds."""
    from pathlib import Path

    import torch

    from llm2rec.seqrec import run_seqrec
    from llm2rec.seqrec.progress import progress_label

    if threads:
        torch.set_num_threads(threads)
    t0 = time.perf_counter()
    # overwrite: the runner's fingerprints decide; resume keeps the seeds whose settings did not change.
    # No progress bar: each evaluation logs a line instead, named after the stage (seqrec/<encoder>-<model>)
    with progress_label("/".join(Path(out_dir).parts[-2:])):
        run_seqrec(dataset, model=model, embeddings=embeddings, seeds=seeds, out_dir=out_dir, resume=True,
                   overwrite=True, **{"progress": False, **options})  # fmt: skip
    return time.perf_counter() - t0
