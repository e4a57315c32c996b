#!/usr/bin/env bash
# Create .venv and install calf-forecaster with every extra and the test tools.
#
# torch comes first, pinned, unless the environment already has one: on a CPU-only machine whose
# pip offers a local CPU wheel this takes seconds, on a GPU machine PyPI's torch==2.13.0 is the
# CUDA build, and an existing torch (e.g. a CUDA build you installed) is kept. Override with
# CALF_TORCH_SPEC="torch==X.Y.Z" (or an index URL via PIP_INDEX_URL / PIP_EXTRA_INDEX_URL).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)
if ! .venv/bin/python -c "import torch" 2>/dev/null; then
    "${pip[@]}" "${CALF_TORCH_SPEC:-torch==2.13.0}"
fi
"${pip[@]}" -e ".[dev]"
.venv/bin/python -c "import calf_forecaster, torch; print('calf-forecaster', calf_forecaster.__version__, 'ready with torch', torch.__version__)"
