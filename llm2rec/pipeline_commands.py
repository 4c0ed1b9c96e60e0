"""CLI: ``llm2rec demo`` — the main job on the built-in dataset."""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory."),
    overwrite: bool = typer.Option(False, help="Replace an existing dataset in OUT."),
) -> None:
    """Prepare the built-in synthetic dataset and print its statistics."""
    from llm2rec.data.commands import print_stats
    from llm2rec.data.dataset import Dataset
    from llm2rec.data.protocol import ProtocolSettings, prepare
    from llm2rec.data.synthetic import generate

    dataset_dir = out / "dataset"
    if dataset_dir.exists() and not overwrite:
        dataset = Dataset.load(dataset_dir)
        typer.echo(f"dataset already prepared in {dataset_dir} (pass --overwrite to rebuild)")
    else:
        dataset = prepare(generate(), dataset_dir, ProtocolSettings(), overwrite=overwrite)
    print_stats(dataset)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
