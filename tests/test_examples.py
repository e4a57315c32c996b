"""Every example runs in its fast mode (tiny test backbone, one epoch), offline, in seconds.

Each runs as a user would run it, ``python <example> --fast``, in a subprocess from ``examples/``
with ``HF_HUB_OFFLINE=1`` and ETTh1 from the test data directory; it must exit 0, write its PNG,
and print only finite MSE / MAE figures.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA_DIR

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = ["demo.py", "sktime_grid_search.py", "darts_backtest.py", "sktime_intervals.py"]
#: A metric figure as the examples print it: "MSE 0.4230", "MAE 1.98,", "MAE nan".
_METRIC = re.compile(r"\b(MSE|MAE)\s+([-+\w.]+)")


def printed_metrics(output: str) -> list[tuple[str, float]]:
    """Every ``MSE <number>`` / ``MAE <number>`` of ``output``, parsed (``nan`` included)."""
    return [(name, float(value.rstrip(".,"))) for name, value in _METRIC.findall(output)]


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_fast_mode(script: str, tmp_path: Path) -> None:
    if not (DATA_DIR / "ett" / "ETTh1.csv").is_file():
        pytest.skip("ETTh1 not found; set CALF_DATA_DIR to a folder holding ett/ETTh1.csv")
    output = tmp_path / f"{Path(script).stem}.png"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, script, "--fast", "--data-dir", str(DATA_DIR), "--output", str(output)],
        cwd=EXAMPLES, env=env, capture_output=True, text=True, timeout=300)
    printed = result.stdout + result.stderr
    assert result.returncode == 0, f"{script} --fast failed:\n{printed[-4000:]}"
    assert output.is_file() and output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", printed[-2000:]
    metrics = printed_metrics(result.stdout)
    assert len(metrics) >= 2, f"{script} printed no MSE/MAE figures:\n{result.stdout}"
    assert all(math.isfinite(value) for _, value in metrics), metrics
