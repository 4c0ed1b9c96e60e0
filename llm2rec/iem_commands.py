"""CLI: ``llm2rec mntp``, ``llm2rec contrastive``, ``llm2rec embed`` (item-level embedding modeling)."""

from __future__ import annotations

import os
from pathlib import Path

import typer

PRESET_HELP = "Settings preset: paper (METHOD §3/§4, GPU) or cpu (SmolLM2 on a laptop, minutes)."
SET_HELP = "Override any stage setting, key=value (repeatable), e.g. --set temperature=0.1."


def _overrides(pairs: list[str] | None, **named) -> dict:
    from llm2rec.data.commands import parse_options

    return {**parse_options(pairs), **{k: v for k, v in named.items() if v is not None}}


def _report(out_dir: Path, what: str) -> None:
    from llm2rec.train.mntp import read_metrics

    if int(os.environ.get("RANK", "0")) != 0:  # one report under torchrun
        return
    history = read_metrics(out_dir)
    evals = [e for e in history if e.get("split") == "eval"]
    trains = [e for e in history if e.get("split") == "train"]
    if trains:
        typer.echo(
            f"train loss {trains[0]['loss']:.4f} (step {trains[0]['step']}) → {trains[-1]['loss']:.4f} (step {trains[-1]['step']})"
        )
    if evals:
        first, best = evals[0], min(evals, key=lambda e: e["loss"])
        typer.echo(
            f"held-out loss {first['loss']:.4f} (step {first['step']}) → {best['loss']:.4f} (step {best['step']}), "
            f"masked-token accuracy {first.get('accuracy', float('nan')):.3f} → {best.get('accuracy', float('nan')):.3f}"
        )
    typer.echo(f"{what} written to {out_dir}")


def mntp(
    model: str = typer.Option(..., "--model", help="CSFT output dir, model dir, smollm2-135m or a hub id."),
    dataset: Path = typer.Option(..., "--dataset", help="Prepared dataset directory."),
    out: Path = typer.Option(..., "--out", help="Output model directory (training state in OUT.work)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Optimizer steps (preset's by default)."),
    preset: str = typer.Option("paper", help=PRESET_HELP),
    lr: float = typer.Option(None, help="Learning rate."),
    batch_size: int = typer.Option(None, help="Effective batch (titles per step, all processes)."),
    micro_batch: int = typer.Option(None, help="Titles per forward pass per process."),
    mask_token: str = typer.Option(None, help='Mask token when the tokenizer has none (default "_").'),
    resume: bool = typer.Option(True, help="Continue from OUT's latest checkpoint."),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Masked next-token prediction on item titles with bidirectional attention."""
    from llm2rec.train.mntp import run_mntp

    options = _overrides(
        set_,
        max_steps=max_steps,
        lr=lr,
        batch_size=batch_size,
        micro_batch=micro_batch,
        mask_token=mask_token,
    )
    _report(run_mntp(model, dataset, out, preset=preset, resume=resume, **options), "MNTP model")


def contrastive(
    model: str = typer.Option(..., "--model", help="MNTP output dir (or any model dir)."),
    dataset: Path = typer.Option(..., "--dataset", help="Prepared dataset directory."),
    out: Path = typer.Option(..., "--out", help="Output encoder directory (training state in OUT.work)."),
    max_steps: int = typer.Option(None, "--max-steps", help="Optimizer steps (preset's by default)."),
    preset: str = typer.Option("paper", help=PRESET_HELP),
    lr: float = typer.Option(None, help="Learning rate."),
    batch_size: int = typer.Option(None, help="Effective batch (titles per step, all processes)."),
    micro_batch: int = typer.Option(None, help="Titles per forward pass per process."),
    temperature: float = typer.Option(None, help="InfoNCE temperature (paper 0.2, official code 0.1)."),
    symmetric: bool = typer.Option(None, "--symmetric/--one-way", help="Symmetric InfoNCE."),
    resume: bool = typer.Option(True, help="Continue from OUT's latest checkpoint."),
    set_: list[str] = typer.Option(None, "--set", help=SET_HELP),
) -> None:
    """Item-level contrastive learning (two dropout views of each title, InfoNCE)."""
    from llm2rec.train.contrastive import run_contrastive

    options = _overrides(
        set_,
        max_steps=max_steps,
        lr=lr,
        batch_size=batch_size,
        micro_batch=micro_batch,
        temperature=temperature,
        symmetric=symmetric,
    )
    _report(run_contrastive(model, dataset, out, preset=preset, resume=resume, **options), "encoder")


def embed(
    encoder: str = typer.Option(
        ..., "--encoder", help="Contrastive output dir, model dir, smollm2-135m, hub id, or st:NAME."
    ),
    dataset: Path = typer.Option(..., "--dataset", help="Prepared dataset directory."),
    out: Path = typer.Option(..., "--out", help="Output FILE.npy (metadata goes to FILE.json)."),
    pooling: str = typer.Option(None, help="mean or last (default: the encoder's; causal models: last)."),
    template: str = typer.Option("{title}", help="Item text, from item columns, e.g. '{title}'."),
    normalize: bool = typer.Option(False, "--normalize", help="L2-normalise the vectors."),
    bidirectional: bool = typer.Option(
        None, "--bidirectional/--causal", help="Attention mode (default: what the encoder's config records)."
    ),
    batch_size: int = typer.Option(32, help="Texts per forward pass."),
    max_length: int = typer.Option(512, help="Truncate texts to this many tokens."),
) -> None:
    """Encode every item of a dataset into an (N+1, d) float32 .npy (row 0 = zeros)."""
    from llm2rec.embed import embed_items

    path = embed_items(
        encoder,
        dataset,
        out,
        pooling=pooling,
        template=template,
        normalize=normalize,
        bidirectional=bidirectional,
        batch_size=batch_size,
        max_length=max_length,
    )
    if int(os.environ.get("RANK", "0")) == 0:
        typer.echo(f"item embeddings written to {path}")


def register(app: typer.Typer) -> None:
    app.command("mntp")(mntp)
    app.command("contrastive")(contrastive)
    app.command("embed")(embed)
