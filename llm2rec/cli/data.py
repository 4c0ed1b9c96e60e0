"""``llm2rec prepare``, ``llm2rec data stats|download``, ``llm2rec export``: the data commands."""

from __future__ import annotations

from pathlib import Path

import typer

from llm2rec.cli import options as opt

# Listed here, not imported from llm2rec.data.sources, so that `llm2rec --help` stays light.
FORMAT_LIST = "amazon2023, amazon2023-benchmark, recbole, d3, generic, builtin"


def prepare(
    fmt: str = typer.Option(..., "--format", "-f", help=f"Input format: {FORMAT_LIST}."),
    inputs: list[Path] = typer.Option(
        None, "--input", "-i", help="Input file(s) or folder(s); several may follow."
    ),
    more_inputs: list[Path] = typer.Argument(None, hidden=True),
    out: Path = typer.Option(..., "--out", "-o", help="Output dataset directory (written atomically)."),
    kcore: int = typer.Option(5, help="Iterative k-core on users and items; 0 disables."),
    max_history: int = typer.Option(10, help="Keep at most this many previous items per example."),
    split: str = typer.Option("loo", help="loo (leave-one-out), temporal (global cut-offs) or shipped."),
    cutoffs: tuple[int, int] = typer.Option(
        (1628643414042, 1658002729837), help="Temporal split cut-offs in ms (default: Amazon 2023's)."
    ),
    min_rating: float = typer.Option(None, help="Drop events rated below this."),
    skip_bad_lines: bool = typer.Option(
        False, help="Skip and count malformed input lines instead of failing."
    ),
    keep_duplicates: bool = typer.Option(
        False, help="Keep repeated (user, item) events (default: keep only the earliest)."
    ),
    option: list[str] = typer.Option(None, "--option", help="Reader option KEY=VALUE (repeatable)."),
    set_: list[str] = opt.assignments("Any dataset setting, e.g. --set kcore=3 --set options.user_col=uid."),
    num_users: int = typer.Option(3000, help="builtin only: number of synthetic users."),
    num_items: int = typer.Option(1500, help="builtin only: number of synthetic items."),
    seed: int = typer.Option(0, help="Seed of the user sample and of the builtin generator."),
    sample_users: int = typer.Option(
        None,
        help="Keep a seeded random sample of this many users (before k-core), e.g. to match a paper's sizes.",
    ),
    cold_items: float = typer.Option(
        None, help="Cold-start: hold this fraction of items (seeded by --seed) out of every training part."
    ),
    cold_after: int = typer.Option(
        None, help="Cold-start by time: hold out the items first seen at or after this time (ms)."
    ),
    cold_titles_known: bool = typer.Option(
        False, help="Let MNTP and the contrastive stage see cold items' titles (default: strict)."
    ),
    overwrite: bool = typer.Option(False, help="Replace OUT if it exists."),
) -> None:
    """Prepare interaction logs with the sequential-recommendation protocol."""
    from llm2rec.config import apply_override, dataset_spec, parse_assignments
    from llm2rec.data.prepare import prepare_from_spec

    spec = {"dataset": dataset_spec(
        format=fmt, input=[str(p) for p in [*(inputs or []), *(more_inputs or [])]], kcore=kcore,
        max_history=max_history, split=split, cutoffs=list(cutoffs), min_rating=min_rating,
        skip_bad_lines=skip_bad_lines, keep_duplicates=keep_duplicates, options=parse_assignments(option),
        num_users=num_users, num_items=num_items, seed=seed, sample_users=sample_users, cold_items=cold_items,
        cold_after=cold_after, cold_titles_known=cold_titles_known,
    )}  # fmt: skip
    for pair in set_ or []:
        apply_override(spec, f"dataset.{pair}")
    print_stats(prepare_from_spec(dataset_spec(**spec["dataset"]), out, overwrite=overwrite))
    typer.echo(f"prepared dataset written to {out}")


def print_stats(dataset) -> None:
    from rich.console import Console
    from rich.table import Table

    c = dataset.manifest["counts"]
    table = Table(title=f"dataset {dataset.root}", show_header=False)
    rows = [
        ("users", f"{c['users']:,}"),
        ("items", f"{c['items']:,}"),
        ("interactions", f"{c['interactions']:,}"),
        ("mean sequence length", f"{c['mean_sequence_length']:.2f}"),
        ("median sequence length", f"{c['median_sequence_length']:.1f}"),
        ("density", f"{c['density']:.5f}"),
        (
            "train / valid / test examples",
            f"{c['train_examples']:,} / {c['valid_examples']:,} / {c['test_examples']:,}",
        ),
        ("CSFT pairs", f"{c['csft_pairs']:,}"),
    ]
    for k, v in rows:
        table.add_row(k, v)
    Console().print(table)


def stats(directory: Path = typer.Argument(..., help="A prepared dataset directory.")) -> None:
    """Print users, items, interactions, sequence lengths and density of a prepared dataset."""
    from llm2rec.data.dataset import Dataset

    print_stats(Dataset.load(directory))


def download(
    categories: list[str] = typer.Argument(
        ..., help="Amazon Reviews 2023 categories, e.g. Video_Games Arts_Crafts_and_Sewing (one or more)."
    ),
    kind: str = typer.Option("raw", help="raw (reviews + meta) or benchmark (split CSVs)."),
    out: Path = typer.Option(..., "--out", "-o", help="Directory to download into."),
    variant: str = typer.Option("5core/last_out_w_his", help="benchmark only: <k>core/<variant>."),
    base_url: str = typer.Option(None, help="Mirror base URL (default: the dataset's public server)."),
) -> None:
    """Download Amazon Reviews 2023 files of one or more categories (resumable, verified, atomic)."""
    from llm2rec.data.download import download as run_download
    from llm2rec.data.download import remote_paths

    kwargs = {"base_url": base_url} if base_url else {}
    for category in categories:  # every name checked before the first byte is fetched
        remote_paths(category, kind, variant)
    for category in categories:
        for path in run_download(category, kind=kind, out_dir=out, variant=variant, **kwargs):
            typer.echo(str(path))


def export(
    directory: Path = typer.Argument(..., help="A prepared dataset directory."),
    out: Path = typer.Argument(..., help="Output directory."),
    fmt: str = typer.Option("llm2rec", "--format", help="Only 'llm2rec' (the official code's layout)."),
    name: str = typer.Option("dataset", help="Base name of the CSFT CSV files."),
    overwrite: bool = typer.Option(False),
) -> None:
    """Export a prepared dataset in another project's layout."""
    from llm2rec.data.dataset import Dataset
    from llm2rec.data.export import export_llm2rec
    from llm2rec.errors import ConfigError

    if fmt != "llm2rec":
        raise ConfigError(f"unknown export format {fmt!r}; only 'llm2rec' is supported")
    typer.echo(str(export_llm2rec(Dataset.load(directory), out, name, overwrite=overwrite)))


def register(app: typer.Typer) -> None:
    app.command("prepare")(prepare)
    app.command("export")(export)
    data_app = typer.Typer(help="Inspect and download datasets.", no_args_is_help=True)
    data_app.command("stats")(stats)
    data_app.command("download")(download)
    app.add_typer(data_app, name="data")
