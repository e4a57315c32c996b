"""The documentation site builds with warnings as errors, offline, and documents the adapters."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    for module in ("sphinx", "myst_parser", "pydata_sphinx_theme", "numpydoc"):
        pytest.importorskip(module, reason='the docs need the `docs` extra: pip install -e ".[docs]"')
    for module in ("sktime", "darts"):  # the API page documents both adapters
        pytest.importorskip(module, reason=f"the API page imports calf_forecaster.{module}")
    out = tmp_path / "html"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode == 0, f"sphinx failed:\n{result.stdout}\n{result.stderr}"
    for page in ("index.html", "api.html", "method.html"):
        assert (out / page).is_file(), f"{page} was not built"
    api = (out / "api.html").read_text(encoding="utf-8")
    assert "CALFForecaster" in api and "CALFModel" in api
