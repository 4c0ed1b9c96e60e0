"""``llm2rec csft``, ``llm2rec mntp``, ``llm2rec contrastive``: the three LLM stages, one at a time."""

from __future__ import annotations

from pathlib import Path

import typer

from llm2rec.cli import options as opt


def csft(
    dataset: Path = opt.dataset_dir(),
    model: str = typer.Option(
        "smollm2-135m",
        "--model",
        help="smollm2-135m, a Hugging Face hub id, a model directory or a .gguf file.",
    ),
    out: Path = typer.Option(..., "--out", help="Output directory: a plain Hugging Face model + tokenizer."),
    max_steps: int = opt.max_steps(),
    preset: str = opt.preset(),
    lr: float = opt.lr(),
    batch_size: int = opt.batch_size(),
    micro_batch: int = opt.micro_batch(),
    resume: bool = opt.resume(),
    overwrite: bool = opt.overwrite_stage(),
    set_: list[str] = opt.assignments(
        "Any CSFT setting, e.g. --set lr=1e-4 --set lora=true --set lora.r=16."
    ),
    legacy: list[str] = typer.Argument(None, hidden=True),  # KEY=VALUE without --set (deprecated)
) -> None:
    """Collaborative supervised fine-tuning: learn to generate the next item's title from the history."""
    from llm2rec.train.csft import run_csft

    settings = opt.overrides(
        [*_legacy(legacy), *(set_ or [])], **_loop_flags(max_steps, lr, batch_size, micro_batch)
    )
    result = run_csft(dataset, model, out, preset=preset, resume=resume, overwrite=overwrite, **settings)
    _report_csft(result)


def mntp(
    model: str = typer.Option(..., "--model", help="CSFT output dir, model dir, smollm2-135m or a hub id."),
    dataset: Path = opt.dataset_dir(),
    out: Path = typer.Option(..., "--out", help="Output model directory (training state in OUT.work)."),
    max_steps: int = opt.max_steps(),
    preset: str = opt.preset(),
    lr: float = opt.lr(),
    batch_size: int = opt.batch_size(),
    micro_batch: int = opt.micro_batch(),
    mask_token: str = typer.Option(None, help='Mask token when the tokenizer has none (default "_").'),
    resume: bool = opt.resume(),
    overwrite: bool = opt.overwrite_stage(),
    set_: list[str] = opt.assignments("Any MNTP setting, e.g. --set lr=1e-4 --set batch_size=64."),
) -> None:
    """Masked next-token prediction on item titles with bidirectional attention."""
    from llm2rec.train.mntp import run_mntp

    settings = opt.overrides(
        set_, **_loop_flags(max_steps, lr, batch_size, micro_batch), mask_token=mask_token
    )
    done = run_mntp(model, dataset, out, preset=preset, resume=resume, overwrite=overwrite, **settings)
    _report(done, "MNTP model")


def contrastive(
    model: str = typer.Option(..., "--model", help="MNTP output dir (or any model dir)."),
    dataset: Path = opt.dataset_dir(),
    out: Path = typer.Option(..., "--out", help="Output encoder directory (training state in OUT.work)."),
    max_steps: int = opt.max_steps(),
    preset: str = opt.preset(),
    lr: float = opt.lr(),
    batch_size: int = opt.batch_size(),
    micro_batch: int = opt.micro_batch(),
    temperature: float = typer.Option(None, help="InfoNCE temperature (paper 0.2, official code 0.1)."),
    symmetric: bool = typer.Option(None, "--symmetric/--one-way", help="Symmetric InfoNCE."),
    resume: bool = opt.resume(),
    overwrite: bool = opt.overwrite_stage(),
    set_: list[str] = opt.assignments("Any contrastive setting, e.g. --set lr=1e-4 --set batch_size=64."),
) -> None:
    """Item-level contrastive learning (two dropout views of each title, InfoNCE)."""
    from llm2rec.train.contrastive import run_contrastive

    loop = _loop_flags(max_steps, lr, batch_size, micro_batch)
    settings = opt.overrides(set_, **loop, temperature=temperature, symmetric=symmetric)
    done = run_contrastive(model, dataset, out, preset=preset, resume=resume, overwrite=overwrite, **settings)
    _report(done, "encoder")


def _loop_flags(max_steps, lr, batch_size, micro_batch) -> dict:
    return {"max_steps": max_steps, "lr": lr, "batch_size": batch_size, "micro_batch": micro_batch}


def _legacy(pairs: list[str] | None) -> list[str]:
    if pairs:
        typer.secho("note: KEY=VALUE without --set is deprecated; write --set KEY=VALUE", err=True)
    return list(pairs or [])


def _report_csft(out_dir: Path) -> None:
    from llm2rec.train.outputs import read_record

    record = read_record(out_dir, "csft")
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
    typer.echo(f"CSFT model written to {out_dir}")


def _report(out_dir: Path, what: str) -> None:
    from llm2rec.distributed import is_main_process
    from llm2rec.train.outputs import read_metrics
    from llm2rec.train.probe import SELECTION_METRICS

    if not is_main_process():  # one report under torchrun
        return
    history = read_metrics(out_dir)
    evals = [e for e in history if e.get("split") == "eval"]
    trains = [e for e in history if e.get("split") == "train"]
    if trains:
        first, last = trains[0], trains[-1]
        typer.echo(
            f"train loss {first['loss']:.4f} (step {first['step']}) → {last['loss']:.4f} (step {last['step']})"
        )
    # The probe that chose the checkpoint: SASRec's when the stage ran it, else knn's.
    metric = next((m for m in reversed(SELECTION_METRICS.values()) if any(m in e for e in evals)), "")
    _report_evals([e for e in evals if "loss" in e], [e for e in evals if metric in e], metric)
    typer.echo(f"{what} written to {out_dir}")


def _report_evals(losses: list[dict], probes: list[dict], probe_metric: str) -> None:
    """The stage's own held-out loss (MNTP) and the valid knn probe that chose its checkpoint, when it has
    them: a contrastive stage has no held-out loss, only the probe."""
    if losses:
        first, best = losses[0], min(losses, key=lambda e: e["loss"])
        typer.echo(
            f"held-out loss {first['loss']:.4f} (step {first['step']}) → {best['loss']:.4f} (step {best['step']}), "
            f"masked-token accuracy {first.get('accuracy', float('nan')):.3f} → {best.get('accuracy', float('nan')):.3f}"
        )
    if probes:
        first, best = probes[0], max(probes, key=lambda e: e[probe_metric])
        typer.echo(
            f"valid {probe_metric.split('_')[0]} Recall@20 {first[probe_metric]:.4f} (step {first['step']}) → "
            f"best {best[probe_metric]:.4f} (step {best['step']}){_margin(best, probe_metric)}"
        )


def _margin(best: dict, probe_metric: str) -> str:
    """How far the kept checkpoint is above the best one before it, against the probe's paired standard
    error: a margin inside one error is not evidence that the kept step is better."""
    key = f"{probe_metric}_vs_best"
    if key not in best or f"{key}_se" not in best:
        return ""
    return f", {best[key]:+.4f} over the best evaluation before it (paired SE {best[key + '_se']:.4f})"


def register(app: typer.Typer) -> None:
    app.command("csft")(csft)
    app.command("mntp")(mntp)
    app.command("contrastive")(contrastive)
