"""``llm2rec seqrec``: train/evaluate SASRec, GRU4Rec or a baseline over seeds (heavy imports inside)."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from llm2rec.cli import options as opt


def register(app: typer.Typer) -> None:
    app.command("seqrec")(seqrec)


def _default(name: str):
    """A setting's one default, for the help text (the flag itself defaults to "unset")."""
    from dataclasses import MISSING, fields

    from llm2rec.seqrec.config import SeqRecConfig, TrainConfig

    for f in (*fields(SeqRecConfig), *fields(TrainConfig)):
        if f.name == name and f.default is not MISSING:
            return f.default
    raise KeyError(name)


def _help(text: str, name: str) -> str:
    return f"{text} (default {_default(name)})."


# The flags that name a seqrec setting: flag parameter -> config field (tests/cli/test_settings.py checks
# that each reaches the config under that name and restates no default).
SETTING_FLAGS = {
    "model": "model", "item_repr": "item_repr", "adapter": "adapter", "finetune_vectors": "finetune_vectors",
    "vector_norm": "vector_norm", "epochs": "epochs", "eval_every": "eval_every", "patience": "patience",
    "valid_metric": "valid_metric", "ks": "ks", "lr": "lr", "weight_decay": "weight_decay",
    "batch_size": "batch_size", "hidden": "hidden", "layers": "layers", "heads": "heads", "ffn": "ffn",
    "dropout": "dropout", "supervise": "supervise", "exclude_history": "exclude_history", "std": "std",
    "device": "device", "quiet": "progress", "plots": "plots",
}  # fmt: skip


def seqrec(
    dataset: Path = typer.Option(
        None, "--dataset", "-d", help="Prepared dataset directory (`llm2rec prepare`)."
    ),
    model: str = typer.Option(
        None,
        "--model",
        "-m",
        help=_help(
            "sasrec, gru4rec, or a training-free baseline: pop, random, last (repeat the last item), "
            "knn (needs --embeddings)",
            "model",
        ),  # fmt: skip
    ),
    out: Path = typer.Option(None, "--out", "-o", help="Results directory (written atomically)."),
    evaluate_only: Path = typer.Option(
        None, "--evaluate-only", help="Re-score the saved models of this results dir (no training)."
    ),
    embeddings: Path | None = typer.Option(
        None, "--embeddings", "-e", help="Item vectors .npy (N+1, d), row i = item i; omit for ID embeddings."
    ),
    seeds: list[int] | None = typer.Option(
        None, "--seeds", help="Seeds, one run each: --seeds 2024 2025 2026 (the default)."
    ),
    more_seeds: list[int] | None = typer.Argument(None, hidden=True),
    item_repr: str | None = typer.Option(
        None, "--item-repr", help="id, text or text+id (default: text with --embeddings, else id)."
    ),
    adapter: str = typer.Option(
        None, help=_help("Adapter for text vectors: linear (the paper's) or mlp", "adapter")
    ),
    finetune_vectors: bool = typer.Option(
        None,
        "--finetune-vectors/--frozen-vectors",
        help=_help("Train the text vectors too", "finetune_vectors"),
    ),
    vector_norm: str = typer.Option(
        None,
        help=_help(
            "Preprocess text vectors: none, scale (mean norm 1), center, l2, center-l2, "
            "standardize (per dimension)",
            "vector_norm",
        ),  # fmt: skip
    ),
    epochs: int = typer.Option(None, help=_help("Maximum epochs", "epochs")),
    eval_every: int = typer.Option(None, help=_help("Validate every k epochs (the paper: 5)", "eval_every")),
    patience: int = typer.Option(
        None, help=_help("Stop after this many epochs without a better validation score", "patience")
    ),
    valid_metric: str = typer.Option(
        None, help=_help("Validation metric for early stopping", "valid_metric")
    ),
    ks: str = typer.Option(
        None, "--ks", help="Comma-separated cut-offs K for recall/ndcg/mrr@K (default 5,10,20)."
    ),
    lr: float | None = typer.Option(None, help="Learning rate (default: SASRec 1e-3, GRU4Rec 1e-4)."),
    weight_decay: float = typer.Option(None, help=_help("AdamW weight decay", "weight_decay")),
    batch_size: int = typer.Option(None, help=_help("Training batch size", "batch_size")),
    hidden: int = typer.Option(None, help=_help("Hidden size", "hidden")),
    layers: int = typer.Option(None, help=_help("Transformer blocks / GRU layers", "layers")),
    heads: int = typer.Option(None, help=_help("SASRec attention heads", "heads")),
    ffn: int | None = typer.Option(None, help="SASRec feed-forward size (default: 2 × hidden)."),
    dropout: float = typer.Option(None, help=_help("Dropout", "dropout")),
    supervise: str = typer.Option(
        None, help=_help("all: every prefix of the training part; last: last item only", "supervise")
    ),
    exclude_history: bool = typer.Option(
        None,
        "--exclude-history/--keep-history",
        help=_help("Remove seen items from rankings", "exclude_history"),
    ),
    std: str = typer.Option(None, help=_help("Std over seeds: population (the paper's) or sample", "std")),
    device: str | None = typer.Option(None, help="cpu, cuda, cuda:1... (default: cuda when available)."),
    threads: int | None = typer.Option(None, help="torch CPU threads (default: torch's choice)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing results directory."),
    resume: bool = typer.Option(
        False, "--resume", help="Reuse seeds already finished in OUT with the same settings; train the rest."
    ),
    quiet: bool = typer.Option(None, "--quiet", help="No progress bars."),
    plots: bool = typer.Option(None, "--plots/--no-plots", help="Write seed-<s>/curve.png (default: yes)."),
    set_: list[str] = opt.assignments(
        "Any seqrec setting, e.g. --set eval_batch_size=512 (wins over flags)."
    ),
) -> None:
    """Train and evaluate a sequential recommender with exact full ranking; writes OUT/results.json."""
    if evaluate_only is not None:
        _evaluate_only(evaluate_only, dataset)
        return
    import torch

    from llm2rec.errors import ConfigError
    from llm2rec.seqrec.config import DEFAULT_KS, DEFAULT_SEEDS
    from llm2rec.seqrec.results import markdown_table
    from llm2rec.seqrec.run import run_seqrec

    if dataset is None or out is None:
        raise ConfigError("--dataset and --out are required (or --evaluate-only DIR)")
    if threads:
        torch.set_num_threads(threads)
    seeds = [*(seeds or []), *(more_seeds or [])] or list(DEFAULT_SEEDS)
    given = dict(locals())
    flags = {field: given[param] for param, field in SETTING_FLAGS.items()}
    flags["ks"] = _cutoffs(ks)
    flags["progress"] = None if quiet is None else not quiet
    logging.getLogger("llm2rec").setLevel(logging.INFO)
    settings = opt.overrides(set_, **flags)
    results = run_seqrec(dataset, embeddings=embeddings, seeds=tuple(seeds), out_dir=out,
                         overwrite=overwrite, resume=resume, **settings)  # fmt: skip
    cutoffs = settings.get("ks") or DEFAULT_KS
    keys = [f"{name}@{k}" for k in cutoffs for name in ("recall", "ndcg")]
    typer.echo(markdown_table({results["model"]: results["metrics"]}, keys))
    typer.echo(f"results written to {out}")


def _cutoffs(ks: str | None) -> tuple[int, ...] | None:
    from llm2rec.errors import ConfigError

    if ks is None:
        return None
    try:
        return tuple(int(k) for k in ks.split(","))
    except ValueError as exc:
        raise ConfigError(f"--ks must be comma-separated integers, not {ks!r}") from exc


def _evaluate_only(results_dir: Path, dataset: Path | None) -> None:
    """Print each saved seed's valid and test metrics next to the ones recorded when it was trained."""
    import json

    from llm2rec.seqrec.saved import evaluate_saved

    for name, scores in evaluate_saved(results_dir, dataset).items():
        recorded = json.loads((results_dir / name / "metrics.json").read_text(encoding="utf-8"))["test"]
        now = scores["test"]
        cells = ", ".join(
            f"{k} {now[k]:.4f} (recorded {recorded.get(k, float('nan')):.4f})"
            for k in ("recall@10", "ndcg@10")
            if k in now
        )
        typer.echo(f"{name}: {cells}")
        groups = ", ".join(f"{g} {m['recall@10']:.4f} ({m['rows']})" for g, m in scores["test_groups"].items()
                           if "recall@10" in m)  # fmt: skip
        typer.echo(f"{name}: test R@10 by target group (rows): {groups}")
