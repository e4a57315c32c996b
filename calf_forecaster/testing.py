"""Tiny offline backbones and configs for tests, docstring examples and fast example runs.

One tiny GPT-2 (2 blocks, width 32, 4 heads, 128-token vocabulary, 64 positions, random weights)
stands in for a language model wherever speed matters: it is built from a config, saved with
``save_pretrained`` and loaded back through the real ``from_pretrained`` path, so nothing here
needs the hub. Never use it for results.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path
from typing import Any

from calf_forecaster.config import CALFConfig

#: The tiny GPT-2's architecture (``transformers.GPT2Config`` arguments).
TINY_GPT2: dict[str, Any] = {"n_layer": 2, "n_embd": 32, "n_head": 4, "vocab_size": 128,
                             "n_positions": 64, "bos_token_id": 0, "eos_token_id": 0}

#: CALF settings that fit the tiny GPT-2 (K=2, P=16, 4 heads), besides ``backbone``.
TINY_SETTINGS: dict[str, Any] = {"seq_len": 16, "pred_len": 8, "n_layers": 2,
                                 "n_prototypes": 16, "n_heads": 4, "encoder_ff_dim": 64}

_SAVED: dict[str, str] = {}


def tiny_gpt2_model(seed: int = 0, **overrides: Any) -> Any:
    """The tiny GPT-2 in memory (``overrides`` change its config), weights seeded by ``seed``."""
    import torch
    from transformers import GPT2Config, GPT2Model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return GPT2Model(GPT2Config(**{**TINY_GPT2, **overrides}))


def save_tiny_gpt2(directory: str | Path, seed: int = 0, **overrides: Any) -> Path:
    """Save the tiny GPT-2 (``overrides`` applied) into ``directory``, like a real model."""
    from calf_forecaster.backbone import quiet_transformers

    directory = Path(directory)
    with quiet_transformers():
        tiny_gpt2_model(seed, **overrides).save_pretrained(directory)
    return directory


def tiny_backbone() -> str:
    """Directory of the tiny GPT-2, saved once per process (removed at exit)."""
    if "gpt2" not in _SAVED:
        directory = tempfile.mkdtemp(prefix="calf-tiny-gpt2-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        _SAVED["gpt2"] = str(save_tiny_gpt2(directory))
    return _SAVED["gpt2"]


def tiny_config(backbone: str | Path | None = None, **changes: Any) -> CALFConfig:
    """A :class:`CALFConfig` sized for the tiny GPT-2 (L=16, H=8, K=2, P=16, 4 heads).

    ``backbone`` defaults to :func:`tiny_backbone`.
    """
    location = str(backbone) if backbone is not None else tiny_backbone()
    return CALFConfig(**{**TINY_SETTINGS, "backbone": location, **changes})


def tiny_parts(config: CALFConfig | None = None, seed: int = 0) -> Any:
    """:class:`~calf_forecaster.backbone.BackboneParts` of an in-memory tiny GPT-2: no disk at all.

    ``config`` defaults to :func:`tiny_config`; its ``n_layers`` blocks are kept.
    """
    from calf_forecaster.backbone import backbone_parts
    from calf_forecaster.prototypes import word_prototypes

    config = config or CALFConfig(**TINY_SETTINGS, backbone="tiny-gpt2-in-memory")
    model = tiny_gpt2_model(seed, n_layer=config.n_layers).float()
    prototypes = word_prototypes(model.get_input_embeddings().weight, config.n_prototypes)
    return backbone_parts(model, config, prototypes=prototypes)  # no cache: no I/O
