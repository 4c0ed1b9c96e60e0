"""``llm2rec run``: prepare → csft → mntp → contrastive → embed → seqrec → report, resumable.

* :mod:`.plan` turns a run config into stages (settings, dependencies, fingerprints);
* :mod:`.runner` runs them, skipping, resuming or redoing each (:func:`run_pipeline`);
* :mod:`.actions` is what each kind of stage does; :mod:`.results` collects ``results.json``;
* :mod:`.layout` is where everything lives in a run directory.
"""

from __future__ import annotations

from llm2rec.pipeline.runner import Pipeline, run_pipeline

__all__ = ["Pipeline", "run_pipeline"]
