"""The quickstart pages run as printed: each page's python blocks, top to bottom, offline."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PAGES = {"sktime.md": "sktime", "darts.md": "darts", "core.md": None, "gpus.md": None}
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_every_python_block_of_the_page_runs(page: str, tmp_path: Path) -> None:
    if PAGES[page] is not None:
        pytest.importorskip(PAGES[page])
    blocks = BLOCK.findall((DOCS / page).read_text())
    assert blocks, f"{page} has no python block"
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                   "CALF_FORECASTER_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
