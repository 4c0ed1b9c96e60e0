# Two commands on a fresh machine:  `make demo`  and  `make test`.
.PHONY: setup demo test lint bench

setup: .venv/.llm2rec-ready

.venv/.llm2rec-ready: pyproject.toml constraints.txt scripts/setup_env.sh
	bash scripts/setup_env.sh

demo: setup
	.venv/bin/llm2rec demo

test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check llm2rec tests benchmarks
