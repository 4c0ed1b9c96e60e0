"""Where everything lives in a run directory: the one place that knows its layout.

::

    RUN/config.json             the resolved run config
    RUN/pipeline.json           stage records (fingerprints, status, wall time)
    RUN/input_hashes.json       sha256 of the input files, cached by path, size and mtime
    RUN/dataset/                the prepared dataset (multi-dataset runs: the LLM stages' training union)
    RUN/datasets/<name>/        multi-dataset runs: each dataset, prepared
    RUN/csft/ mntp/ contrastive/   the plain HF model each training stage hands on
    RUN/<stage>.work/           its checkpoints and training state while it runs
    RUN/embeddings/[<dataset>/]<encoder>.npy (+ .json)
    RUN/seqrec/[<dataset>/]<encoder>-<model>/   the seqrec results dir of one encoder × recommender
    RUN/results.json  report.md  report.html  plots/
"""

from __future__ import annotations

from pathlib import Path

# What a run writes directly into its directory, as its output marker lists it (llm2rec.outdir); every
# stage directory (dataset/, csft/, csft.work/, seqrec/<enc>-<model>/, ...) carries a marker of its own.
RUN_FILES = ("config.json", "pipeline.json", "input_hashes.json", "results.json", "report.md",
             "report.html", "plots/", "embeddings/*.npy", "embeddings/*.json")  # fmt: skip


class RunLayout:
    """The paths of one run directory (``root``)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.state = self.root / "pipeline.json"
        self.input_hashes = self.root / "input_hashes.json"
        self.dataset = self.root / "dataset"
        self.results = self.root / "results.json"
        self.report_md = self.root / "report.md"
        self.report_html = self.root / "report.html"
        self.plots = self.root / "plots"

    def training(self, stage: str) -> Path:
        return self.root / stage

    def source_dataset(self, name: str) -> Path:
        """One dataset of a multi-dataset run, prepared."""
        return self.root / "datasets" / name

    def embeddings(self, encoder: str, dataset: str | None = None) -> Path:
        return self.root / "embeddings" / (dataset or "") / f"{encoder}.npy"

    def seqrec(self, encoder: str, model: str, dataset: str | None = None) -> Path:
        return self.root / "seqrec" / (dataset or "") / f"{encoder}-{model}"
