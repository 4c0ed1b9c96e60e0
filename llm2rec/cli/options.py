"""What the commands share: option definitions, the ``--set key=value`` overrides, and result printing.

Every command that takes settings takes ``--set KEY=VALUE`` (repeatable), parsed by the one grammar of
:func:`llm2rec.config.parse_assignment` (values as YAML: ``--set lr=1e-4 --set lora=true``).
"""

from __future__ import annotations

import typer

from llm2rec.train.config import DEFAULT_PRESET, PRESET_NAMES

PRESET_HELP = (
    "Settings preset: auto (paper on a GPU, cpu elsewhere), paper (METHOD §2-§4, GPU) or cpu "
    "(SmolLM2 on a laptop, minutes)."
)


def assignments(help: str = "Override any setting, KEY=VALUE (repeatable), e.g. --set lr=1e-4."):
    return typer.Option(None, "--set", help=help)


def dataset_dir():
    return typer.Option(..., "--dataset", "-d", help="Prepared dataset directory (`llm2rec prepare`).")


def max_steps():
    return typer.Option(None, "--max-steps", help="Optimizer steps (the preset's by default).")


def _checked_preset(value: str) -> str:
    """A checked choice, refused in the one-line form every bad input gets (not typer's usage box)."""
    from llm2rec.errors import ConfigError

    if value not in PRESET_NAMES:
        raise ConfigError(f"unknown preset {value!r}; choose one of {', '.join(PRESET_NAMES)}")
    return value


def preset():
    return typer.Option(DEFAULT_PRESET, help=PRESET_HELP, callback=_checked_preset, show_default=True)


def lr():
    return typer.Option(None, help="Peak learning rate (the preset's by default).")


def batch_size():
    return typer.Option(None, help="Examples per optimizer step, over all processes (the effective batch).")


def micro_batch():
    return typer.Option(None, help="Examples per forward pass per process (accumulated up to --batch-size).")


def resume():
    return typer.Option(True, help="Continue an interrupted run from OUT.work; skip a finished one.")


def overwrite_stage():
    return typer.Option(
        False, "--overwrite", help="Replace OUT (and discard OUT.work) when made with other settings."
    )


def overrides(pairs: list[str] | None, **named) -> dict:
    """The named flags the user gave (None = not given), then the ``--set`` assignments, which win."""
    from llm2rec.config import parse_assignments

    return {**{k: v for k, v in named.items() if v is not None}, **parse_assignments(pairs)}


def echo_main(text: str) -> None:
    """Print once, from the launcher's main process (every process runs the command under torchrun)."""
    from llm2rec.distributed import is_main_process

    if is_main_process():
        typer.echo(text)
