"""The ``llm2rec`` command. Each area registers its subcommands from its own ``commands`` module, which
imports only typer at module level so that ``llm2rec --help`` stays fast; heavy imports happen inside the
command bodies."""

from __future__ import annotations

import importlib
import logging
import sys

import typer

app = typer.Typer(
    name="llm2rec",
    help="LLM2Rec: LLM item embeddings for sequential recommendation (prepare → csft → mntp → "
    "contrastive → embed → seqrec).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

# Each module exposes ``register(app: typer.Typer) -> None``.
COMMAND_MODULES = [
    "llm2rec.data.commands",
    "llm2rec.pipeline_commands",
    "llm2rec.seqrec.commands",
    "llm2rec.iem_commands",
    "llm2rec.train.commands",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from llm2rec.errors import USER_ERRORS

    try:
        app()
    except USER_ERRORS as exc:  # a clear one-line message instead of a traceback for bad input
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
