"""``llm2rec recommend`` and ``llm2rec serve``: use a finished run."""

from __future__ import annotations

from pathlib import Path

import typer


def recommend(
    run_dir: Path = typer.Argument(..., help="A finished `llm2rec run` directory."),
    history: list[str] = typer.Option(
        ..., "--history", help="A history item, oldest first (repeatable): an item id, key or title."
    ),
    encoder: str = typer.Option("llm2rec", help="Whose item vectors (an encoder of the run, or id)."),
    recommender: str = typer.Option("sasrec", help="Which saved recommender (sasrec, gru4rec)."),
    dataset: str = typer.Option(None, help="Multi-dataset runs: the evaluation dataset."),
    k: int = typer.Option(10, "--k", help="How many items."),
    exclude_history: bool = typer.Option(False, help="Never recommend an item of the history."),
    add_items: Path = typer.Option(
        None, help="A text file of new item titles, one per line, ranked with the catalogue."
    ),
    seed: int = typer.Option(None, help="Which seed's model (default: the first saved)."),
) -> None:
    """Print the top-k next items after a history, from a run's saved recommender."""
    from rich.console import Console
    from rich.table import Table

    from llm2rec.serve.recommender import Recommender

    rec = Recommender.load(run_dir, encoder, recommender, dataset=dataset, seed=seed)
    if add_items is not None:
        if not add_items.is_file():
            raise FileNotFoundError(f"--add-items file not found: {add_items}")
        titles = [line.strip() for line in add_items.read_text(encoding="utf-8").splitlines() if line.strip()]
        rec.add_items(titles)
    table = Table(title=f"{rec.name}: top {k}")
    for column in ("rank", "item id", "title", "score"):
        table.add_column(column)
    for rank, r in enumerate(rec.recommend(history, k, exclude_history), start=1):
        table.add_row(str(rank), f"{r.item_id}" + (" (new)" if r.new else ""), r.title, f"{r.score:.4f}")
    Console().print(table)


def serve(
    run_dir: Path = typer.Argument(..., help="A finished `llm2rec run` directory."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (local only by default)."),
    port: int = typer.Option(8000, help="Port."),
    recommender: str = typer.Option("sasrec", help="Which saved recommender to show per encoder."),
    dataset: str = typer.Option(None, help="Multi-dataset runs: the evaluation dataset."),
) -> None:
    """A local web page: each encoder's recommendations side by side, nearest neighbours per encoder."""
    try:
        from llm2rec.serve.app import serve as run_server
    except ImportError as exc:  # pragma: no cover - the serve extra missing
        raise typer.BadParameter("`llm2rec serve` needs `pip install llm2rec[serve]`") from exc
    typer.echo(f"llm2rec serve: http://{host}:{port}/  (Ctrl-C stops)")
    run_server(run_dir, host=host, port=port, recommender=recommender, dataset=dataset)


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)
    app.command("serve")(serve)
