#!/usr/bin/env bash
# Build RecBole 1.2.1 in its own venv (it needs numpy<2 and pandas<3), for benchmarks/seqrec_vs_recbole.py.
#   bash benchmarks/recbole/setup.sh [VENV_DIR]      (default: .venv-recbole at the repository root)
# torch is the same pinned CPU build as the project's; recbole itself without its optional extras (ray,
# hyperopt are not needed: the benchmark calls RecBole's building blocks, not quick_start).
set -euo pipefail
cd "$(dirname "$0")/../.."
VENV="${1:-.venv-recbole}"
PYTHON="${PYTHON:-python3}"
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "${LLM2REC_TORCH:-torch==2.13.0}"
"$VENV/bin/pip" install -q "numpy<2" "pandas<3" "scipy>=1.6" "scikit-learn>=0.23.2" "pyyaml>=5.1" \
  "colorlog==4.7.2" "colorama==0.4.4" "tqdm>=4.48" "tensorboard>=2.5" "thop>=0.1.1.post2207130030" \
  "tabulate>=0.8.10" "plotly>=4" "texttable>=0.9" psutil
"$VENV/bin/pip" install -q --no-deps "recbole==1.2.1"
"$VENV/bin/python" -c "import recbole; print('recbole', recbole.__version__)"
