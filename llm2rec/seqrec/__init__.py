"""Downstream sequential recommenders (SASRec, GRU4Rec, popularity) and exact full-ranking evaluation.

The public entry point is :func:`run_seqrec`; this package imports nothing heavy until it is called, so
that ``llm2rec --help`` stays fast.
"""

from __future__ import annotations


def run_seqrec(dataset_dir, model: str | None = None, embeddings=None, seeds=None, out_dir=None, **kw):
    """Train and evaluate ``model`` on a prepared dataset over ``seeds``; see :func:`llm2rec.seqrec.run.run_seqrec`."""
    from llm2rec.seqrec.config import DEFAULT_SEEDS
    from llm2rec.seqrec.run import run_seqrec as _run

    seeds = DEFAULT_SEEDS if seeds is None else seeds
    return _run(dataset_dir, model=model, embeddings=embeddings, seeds=seeds, out_dir=out_dir, **kw)


__all__ = ["run_seqrec"]
