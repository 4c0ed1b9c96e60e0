"""``llm2rec run``, ``llm2rec demo``, ``llm2rec report``: the whole pipeline and its report."""

from __future__ import annotations

from pathlib import Path

import typer

from llm2rec.cli import options as opt

DEMO_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "demo.yaml"


def run(
    config: Path = typer.Argument(..., help="Run config (YAML), e.g. configs/cpu-small.yaml."),
    out: Path = typer.Option(..., "--out", "-o", help="Run directory (re-use it to resume)."),
    set_: list[str] = opt.assignments("Override a run-config key, e.g. --set csft.max_steps=200."),
    legacy: list[str] = typer.Argument(None, hidden=True),  # section.key=value without --set (still read)
    force: list[str] = typer.Option(None, "--force", help="Re-run this stage and everything after it."),
) -> None:
    """Run the whole pipeline: prepare → csft → mntp → contrastive → embed → seqrec → report."""
    from llm2rec.config import load_config

    _run_and_show(load_config(config, [*(legacy or []), *(set_ or [])]), out, force)


def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", "-o", help="Run directory."),
    set_: list[str] = opt.assignments("Override a run-config key, e.g. --set seqrec.seeds=[1,2]."),
    legacy: list[str] = typer.Argument(None, hidden=True),
) -> None:
    """The whole pipeline on the built-in synthetic dataset with SmolLM2 and the CPU preset."""
    from llm2rec.config import load_config

    _run_and_show(load_config(DEMO_CONFIG, [*(legacy or []), *(set_ or [])]), out, None)


def report(run_dir: Path = typer.Argument(..., help="A run directory.")) -> None:
    """Write report.md and report.html (with PNG plots) from a run directory."""
    from llm2rec.pipeline.report import write_report

    typer.echo(str(write_report(run_dir)))


def _run_and_show(cfg: dict, out: Path, force) -> None:
    import time

    from rich.console import Console
    from rich.markdown import Markdown

    from llm2rec.pipeline import run_pipeline
    from llm2rec.pipeline.layout import RunLayout
    from llm2rec.pipeline.report import results_table

    t0 = time.perf_counter()
    try:
        results = run_pipeline(cfg, out, force)
    except BaseException:
        if RunLayout(out).state.is_file():  # stages were started: say what the directory is good for
            typer.secho(
                f"the run stopped; {out} keeps every finished stage: run the same command again to resume, "
                f"or delete {out} to start over",
                err=True,
            )
        raise
    if results is None:  # not the main process of a multi-process launch
        return
    console = Console()
    console.print(Markdown("\n".join(results_table(results, describe=False))))
    layout = RunLayout(out)
    console.print(
        f"finished in {time.perf_counter() - t0:.0f} s; report: {layout.report_md} ({layout.report_html})"
    )


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("demo")(demo)
    app.command("report")(report)
