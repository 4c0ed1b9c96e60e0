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
    template: str = typer.Option(None, help="Item text, from item columns (default '{title}')."),
    normalize: bool = typer.Option(None, "--normalize", help="L2-normalise the vectors."),
    bidirectional: bool = typer.Option(
        None, "--bidirectional/--causal", help="Attention mode (default: what the encoder's config records)."
    ),
    batch_size: int = typer.Option(None, help="Texts per forward pass (default 32)."),
    max_length: int = typer.Option(512, help="Truncate texts to this many tokens."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace OUT if llm2rec wrote it."),
    dtype: str = typer.Option(
        None, "--dtype", help="float32 (default) or float16: half the file, read back as float32."
    ),
    shard_size: int = typer.Option(
        None,
        "--shard-size",
        min=1,
        help="Items per shard, the unit an interrupted extraction resumes by (default: "
        "llm2rec.embed.shards.DEFAULT_SHARD_SIZE, fewer when the processes would not all get one).",
    ),
    set_: list[str] = opt.assignments(
        "A setting of a run config's embed section (template, normalize, batch_size), e.g. --set batch_size=64."
    ),
) -> None:
    """Encode every item of a dataset into an (N+1, d) .npy (row 0 = zeros).

    Under torchrun / accelerate launch the processes share the items out by shard; run again after an
    interruption, only the shards that did not finish are encoded (their work is kept in OUT.work/).
    """
    from llm2rec.config import embed_settings
    from llm2rec.embed.extract import embed_items

    # The run config's embed section, the same settings `llm2rec run` gives its embedding stages.
    settings = embed_settings(
        **opt.overrides(set_, template=template, normalize=normalize, batch_size=batch_size)
    )
    path = embed_items(
        encoder,
        dataset,
        out,
        pooling=pooling,
        bidirectional=bidirectional,
        max_length=max_length,
        overwrite=overwrite,
        **{k: v for k, v in (("dtype", dtype), ("shard_size", shard_size)) if v is not None},
        **settings,
    )
    opt.echo_main(f"item embeddings written to {path}")


def register(app: typer.Typer) -> None:
    app.command("embed")(embed)
