"""The ``llm2rec`` command: the front door. Each module below holds the commands of one area and is
imported here by name; they import only typer at module level, so ``llm2rec --help`` stays fast (the
library is imported inside the command bodies). This package is the only place that imports typer.

=============  ==================================================
module         commands
=============  ==================================================
:mod:`.data`   ``prepare``, ``export``, ``data stats``, ``data download``
:mod:`.train`  ``csft``, ``mntp``, ``contrastive``
:mod:`.embed`  ``embed``
:mod:`.seqrec` ``seqrec``
:mod:`.run`    ``run``, ``demo``, ``report``
:mod:`.serve`  ``recommend``, ``serve``
=============  ==================================================
"""

from __future__ import annotations

import logging
import signal
import sys

import typer

from llm2rec.cli import data, embed, run, seqrec, serve, train

app = typer.Typer(
    name="llm2rec",
    help="LLM2Rec: LLM item embeddings for sequential recommendation (prepare → csft → mntp → "
    "contrastive → embed → seqrec).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _area in (data, run, seqrec, train, embed, serve):
    _area.register(app)


def _print_version(value: bool) -> None:
    if value:
        from llm2rec.versions import package_version

        typer.echo(package_version())
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print llm2rec's version and exit."
    ),
) -> None:
    pass


def _exit_on_sigterm(signum, frame) -> None:
    # As for Ctrl-C: unwind, so every half-written output removes its temporary files on the way out.
    raise SystemExit(128 + signum)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from llm2rec.errors import USER_ERRORS

    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app()
    except USER_ERRORS as exc:  # a clear one-line message instead of a traceback for bad input
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
