"""``llm2rec recommend`` and ``llm2rec serve``: use a finished run."""

from __future__ import annotations

from pathlib import Path

import typer

HISTORY_HELP = (
    "A history entry, oldest first (repeatable): id:123 (an item id), key:B00004Z5M1 (an item key), "
    "title:SOME TITLE, or bare text: a known key, else a known title (case and spacing ignored), else a new "
    "title, embedded for this command only. A bare number is a key or a title, never an item id: write id:N."
)
NO_AUTH = (
    "the page has no authentication: anyone who can reach {host}:{port} can query the run "
    "(its titles, its test users' histories)"
)


def recommend(
    run_dir: Path = typer.Argument(..., help="A finished `llm2rec run` directory."),
    history: list[str] = typer.Option(..., "--history", help=HISTORY_HELP),
    encoder: str = typer.Option("llm2rec", help="Whose item vectors (an encoder of the run, or id)."),
    recommender: str = typer.Option("sasrec", help="Which saved recommender (sasrec, gru4rec)."),
    dataset: str = typer.Option(None, help="Multi-dataset runs: the evaluation dataset."),
    k: int = typer.Option(
        10,
        "--k",
        help="How many items (at most the catalogue, the added items and the history's new titles).",
    ),
    exclude_history: bool = typer.Option(
        False, help="Never recommend an item of the history (the whole history, however long)."
    ),
    add_items: Path = typer.Option(
        None,
        help="A text file of item titles, one per line, added to the catalogue before ranking; a title the "
        "catalogue already has (or one repeated) is not added again.",
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
        before = rec.num_items
        ids = rec.add_items(titles)
        added = rec.num_items - before
        typer.echo(f"{added} new item{'s' if added != 1 else ''} added; "
                   f"{sum(i <= before for i in ids)} already in the catalogue")  # fmt: skip
    ranking = rec.rank(history, k, exclude_history)
    for e in ranking.history:
        what = {"id": "item id", "key": "item key", "title": "title", "new": "new title"}[e.kind]
        typer.echo(
            f"{e.given!r} → {what}" + (f" {e.item_id}" if e.item_id is not None else "") + f": {e.title}"
        )
    table = Table(title=f"{rec.name}: top {k}")
    for column in ("rank", "item id", "title", "score"):
        table.add_column(column)
    for rank, r in enumerate(ranking.items, start=1):
        table.add_row(str(rank), f"{r.item_id}" + (" (new)" if r.new else ""), r.title, f"{r.score:.4f}")
    Console().print(table)


def serve(
    run_dir: Path = typer.Argument(..., help="A finished `llm2rec run` directory."),
    host: str = typer.Option(
        "127.0.0.1", help="Address to listen on: loopback (127.0.0.1, ::1, localhost) unless --allow-remote."
    ),
    port: int = typer.Option(8000, help="Port."),
    recommender: str = typer.Option("sasrec", help="Which saved recommender to show per encoder."),
    dataset: str = typer.Option(None, help="Multi-dataset runs: the evaluation dataset."),
    allow_remote: bool = typer.Option(
        False,
        "--allow-remote",
        help="Allow a --host that is not loopback. The page has no authentication: anyone who can reach "
        "the address can query the run.",
    ),
) -> None:
    """A local web page: each encoder's recommendations side by side, nearest neighbours per encoder."""
    try:
        import llm2rec.serve.app as serve_app
    except ImportError as exc:  # pragma: no cover - the serve extra missing
        raise typer.BadParameter("`llm2rec serve` needs `pip install llm2rec[serve]`") from exc
    if not serve_app.is_loopback(host):
        if not allow_remote:
            raise typer.BadParameter(
                f"{host} is not a loopback address and {NO_AUTH.format(host=host, port=port)}; "
                "pass --allow-remote to listen there anyway",
                param_hint="--host",
            )
        typer.secho(f"warning: listening on {host}: {NO_AUTH.format(host=host, port=port)}",
                    fg=typer.colors.YELLOW, err=True)  # fmt: skip
    typer.echo(f"llm2rec serve: http://{host}:{port}/  (Ctrl-C stops)")
    serve_app.serve(run_dir, host=host, port=port, recommender=recommender, dataset=dataset,
                    allow_remote=allow_remote)  # fmt: skip


def register(app: typer.Typer) -> None:
    app.command("recommend")(recommend)
    app.command("serve")(serve)
