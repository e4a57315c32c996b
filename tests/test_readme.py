"""Every ```python block of README.md runs as printed, offline, in a fresh interpreter.

Each block runs in its own subprocess (``sys.executable -c``) in an empty temporary directory with
``HF_HUB_OFFLINE=1``, so a snippet that needs the network, a file of the checkout or a name defined
in another block fails here. The prototype cache is the test session's (``conftest.py``), so blocks
on the same random GPT-2 share its word prototypes, as they would in a user's cache.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
#: A fenced block whose info string is exactly ``python``: (line of the fence, code).
_BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
#: Seconds one block may take; together they run in well under a minute on two idle cores.
TIMEOUT_S = 180


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number of the opening fence, code)`` of every ```python block of ``text``."""
    return [(text.count("\n", 0, match.start()) + 1, match.group(1))
            for match in _BLOCK.finditer(text)]


BLOCKS = python_blocks(README.read_text(encoding="utf-8"))


def test_the_readme_has_the_sktime_darts_and_core_snippets() -> None:
    code = "\n".join(block for _, block in BLOCKS)
    assert len(BLOCKS) >= 3
    for name in ("CALFForecaster", "CALFModel", "CALF.from_pretrained"):
        assert name in code


@pytest.mark.parametrize("line, code", BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_readme_block_runs_as_printed(line: int, code: str, tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, (
        f"the ```python block at README.md:{line} failed (exit {result.returncode}):\n"
        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
