"""CLI: ``llm2rec csft``. Heavy imports happen inside the command so ``llm2rec --help`` stays fast."""

from __future__ import annotations

from pathlib import Path

import typer


def csft(
    dataset: Path = typer.Option(..., "--dataset", help="Prepared dataset directory (llm2rec prepare)."),
    model: str = typer.Option(
        "smollm2-135m",
        "--model",
        help="smollm2-135m, a Hugging Face hub id, a model directory or a .gguf file.",
    ),
    out: Path = typer.Option(..., "--out", help="Output directory: a plain Hugging Face model + tokenizer."),
    max_steps: int = typer.Option(None, "--max-steps", help="Optimizer steps (the preset's by default)."),
    preset: str = typer.Option("paper", help="paper (Qwen2-0.5B setting, GPU) or cpu (SmolLM2, minutes)."),
    resume: bool = typer.Option(True, help="Continue an interrupted run from OUT.work; skip a finished one."),
    options: list[str] = typer.Argument(
        None, help="Any CSFT setting as key=value, e.g. lr=1e-4 lora=true lora.r=16 max_length=256."
    ),
) -> None:
    """Collaborative supervised fine-tuning: learn to generate the next item's title from the history."""
    import json

    from llm2rec.data.commands import parse_options
    from llm2rec.train.csft import run_csft

    overrides = {k.replace(".", "_"): v for k, v in parse_options(options).items()}
    if max_steps is not None:
        overrides["max_steps"] = max_steps
    result = run_csft(dataset, model, out, preset=preset, resume=resume, **overrides)
    record = json.loads((Path(result) / "csft.json").read_text(encoding="utf-8"))
    before, after = record.get("generation_before") or {}, record.get("generation_after") or {}
    if record.get("eval_loss_before") is not None:
        typer.echo(
            f"validation loss {record['eval_loss_before']:.4f} → {record['eval_loss_best']:.4f} "
            f"(chosen: {record['chosen']}, step {record['best_step']})"
        )
    if before and after:
        changes = ", ".join(
            f"{key.replace('_', ' ')} {before[key]:.3f} → {after[key]:.3f}"
            for key in ("exact_match", "in_catalogue", "token_f1", "grounded_hit", "ended")
            if key in before and key in after
        )
        typer.echo(f"generation sanity ({after['samples']} validation pairs): {changes}")
    typer.echo(f"CSFT model written to {result}")


def register(app: typer.Typer) -> None:
    app.command("csft")(csft)
