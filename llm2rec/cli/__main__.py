"""``python -m llm2rec.cli`` (as under ``torchrun`` / ``accelerate launch``) = the ``llm2rec`` command."""

from llm2rec.cli import main

main()
