"""CLI: ``llm2rec run``, ``llm2rec demo``, ``llm2rec report``."""

from __future__ import annotations

from pathlib import Path

import typer

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def run(
    config: Path = typer.Argument(..., help="Run config (YAML), e.g. configs/cpu-small.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (re-use it to resume)."),
    overrides: list[str] = typer.Argument(None, help="Dotted key=value overrides, e.g. csft.max_steps=20."),
    force: list[str] = typer.Option(None, "--force", help="Re-run this stage and everything after it."),
) -> None:
    """Run the whole pipeline: prepare → csft → mntp → contrastive → embed → seqrec → report."""
    from llm2rec.config import load_config

    _run_and_show(load_config(config, overrides), out, force)


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory."),
    overrides: list[str] = typer.Argument(None, help="Dotted key=value overrides."),
) -> None:
    """The whole pipeline on the built-in synthetic dataset with SmolLM2 and the CPU preset."""
    from llm2rec.config import load_config

    _run_and_show(load_config(DEMO_CONFIG, overrides), out, None)


def report(run_dir: Path = typer.Argument(..., help="A run directory.")) -> None:
    """Write report.md and report.html (with PNG plots) from a run directory."""
    from llm2rec.report import write_report

    typer.echo(str(write_report(run_dir)))


def _run_and_show(cfg: dict, out: Path, force) -> None:
    import time

    from rich.console import Console
    from rich.markdown import Markdown

    from llm2rec.pipeline import run_pipeline
    from llm2rec.report import results_table

    t0 = time.perf_counter()
    results = run_pipeline(cfg, out, force)
    if results is None:  # not the main process of a multi-process launch
        return
    console = Console()
    console.print(Markdown("\n".join(results_table(results, describe=False))))
    console.print(
        f"finished in {time.perf_counter() - t0:.0f} s; report: {out / 'report.md'} ({out / 'report.html'})"
    )


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("demo")(demo)
    app.command("report")(report)
