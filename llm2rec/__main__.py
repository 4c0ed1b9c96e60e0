"""``python -m llm2rec`` = the ``llm2rec`` command (the front door's other entrance)."""

from llm2rec.cli import main

main()
