#!/usr/bin/env bash
# One command on a CUDA machine: CUDA tests, one ETTh1 epoch in float32 and bf16-mixed, prediction.
# Says "no CUDA" and exits 0 elsewhere. See benchmarks/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python)}"
exec timeout 600 "$PYTHON" benchmarks/gpu_check.py "$@"
