"""``llm2rec embed``: every item of a dataset through an encoder, into an item-vector file."""

from __future__ import annotations

from pathlib import Path

import typer

from llm2rec.cli import options as opt


def embed(
    encoder: str = typer.Option(
        ..., "--encoder", help="Contrastive output dir, model dir, smollm2-135m, hub id, or st:NAME."
    ),
    dataset: Path = opt.dataset_dir(),
    out: Path = typer.Option(..., "--out", help="Output FILE.npy (metadata goes to FILE.json)."),
    pooling: str = typer.Option(None, help="mean or last (default: the encoder's; causal models: last)."),
    template: str = typer.Option("{title}", help="Item text, from item columns, e.g. '{title}'."),
    normalize: bool = typer.Option(False, "--normalize", help="L2-normalise the vectors."),
    bidirectional: bool = typer.Option(
        None, "--bidirectional/--causal", help="Attention mode (default: what the encoder's config records)."
    ),
    batch_size: int = typer.Option(32, help="Texts per forward pass."),
    max_length: int = typer.Option(512, help="Truncate texts to this many tokens."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if llm2rec wrote it."),
) -> None:
    """Encode every item of a dataset into an (N+1, d) float32 .npy (row 0 = zeros)."""
    from llm2rec.embed.extract import embed_items

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
        overwrite=overwrite,
    )
    opt.echo_main(f"item embeddings written to {path}")


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
