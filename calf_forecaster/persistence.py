"""Saving and loading fitted CALF networks, and importing the authors' checkpoints.

A saved model is a directory with two files, loadable without pickle:

``calf.json``
    Format version, the :class:`CALFConfig`, the backbone's embedding fingerprint and free-form
    metadata (adapters store the column order there: the backbone is causal over variates).
``weights.safetensors``
    Only the state that is not the pre-trained backbone's (``CALF.portable_state_dict``): the
    trainable weights, the word prototypes and, for a randomly initialised backbone, its weights.

Loading rebuilds the backbone from its name or path and checks that its word embeddings are the
ones the model was trained with.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from calf_forecaster.config import CALFConfig
from calf_forecaster.model import CALF
from calf_forecaster.prototypes import word_prototypes

logger = logging.getLogger(__name__)

FORMAT_NAME = "calf-forecaster"
FORMAT_VERSION = 1
CONFIG_FILE = "calf.json"
WEIGHTS_FILE = "weights.safetensors"


class BackboneMismatchError(ValueError):
    """The backbone found at load time is not the one the saved model was trained with."""


def has_other_backbone(model: CALF, fingerprint: str | None) -> bool:
    """Whether ``model``'s pre-trained backbone differs from the one whose embeddings gave
    ``fingerprint``; always ``False`` where the backbone is saved with the model (random weights,
    or no LLM) or no fingerprint was recorded."""
    return bool(model.backbone_state_keys) and fingerprint is not None \
        and fingerprint != model.embedding_fingerprint


def save_calf(model: CALF, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (config, non-backbone weights, ``metadata``) into ``directory``.

    Parameters
    ----------
    model
        The network to save.
    directory
        Created if needed; existing CALF files in it are overwritten.
    metadata
        JSON-serialisable extras, e.g. ``{"columns": [...]}``.

    Returns
    -------
    pathlib.Path
        ``directory``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().to("cpu").contiguous()
               for name, tensor in model.portable_state_dict().items()}
    save_file(tensors, str(directory / WEIGHTS_FILE))
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "embedding_fingerprint": model.embedding_fingerprint,
        "metadata": metadata or {},
    }
    (directory / CONFIG_FILE).write_text(json.dumps(document, indent=2, sort_keys=True))
    return directory


def load_calf(directory: str | Path, map_location: str | torch.device = "cpu",
              config_overrides: dict[str, Any] | None = None,
              check_backbone: bool = True) -> tuple[CALF, dict[str, Any]]:
    """Load a model written by :func:`save_calf`, in eval mode.

    Parameters
    ----------
    directory
        The saved model's directory.
    map_location
        Device to put the weights on.
    config_overrides
        Config fields to change before rebuilding, typically ``{"backbone": "/local/copy"}`` when
        the backbone moved.
    check_backbone
        Refuse a backbone whose word embeddings differ from the training backbone's.

    Returns
    -------
    model, metadata

    Raises
    ------
    FileNotFoundError
        If ``directory`` holds no saved CALF model.
    BackboneMismatchError
        If the rebuilt backbone is not the one the model was trained with.
    """
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"no saved CALF model in {directory} (missing {CONFIG_FILE})")
    document = json.loads(config_path.read_text())
    if document.get("format") != FORMAT_NAME or document.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{config_path} is not a CALF model of a format this version reads "
                         f"(format {document.get('format')!r}, version "
                         f"{document.get('format_version')})")
    config = CALFConfig.from_dict({**document["config"], **(config_overrides or {})})
    model = CALF(config)
    if check_backbone and has_other_backbone(model, document["embedding_fingerprint"]):
        raise BackboneMismatchError(
            f"the backbone {config.backbone!r} has other word embeddings than the one this model "
            f"was trained with; point `backbone` at the original (config_overrides) or pass "
            f"check_backbone=False to load anyway"
        )
    model.load_portable_state_dict(load_file(str(directory / WEIGHTS_FILE)))
    return model.to(map_location).eval(), document["metadata"]


# ---------------------------------------------------------------------- the authors' checkpoints

_REFERENCE_PREFIXES = (
    ("in_layer.linear.", "cross_modal.token_embedding."),
    ("in_layer.transformer_encoder.layers.0.", "cross_modal.encoder."),
    ("in_layer.cross_attention.", "cross_modal.cross_attention."),
    ("gpt2.base_model.model.", "branches.backbone."),
    ("time_proj.", "time_feature_projections."),
    ("text_proj.", "text_feature_projections."),
    ("out_layer.", "head."),
)


def _load_reference_prototypes(prototypes: object) -> torch.Tensor:
    """The reference's ``wte_pca_500.pt`` (a pickled (D, P) numpy array) or an array -> (P, D)."""
    if isinstance(prototypes, (str, Path)):
        allowed = [np.ndarray, np.dtype, np.dtypes.Float32DType, np.dtypes.Float64DType,
                   np._core.multiarray._reconstruct]  # numpy arrays only, no arbitrary code
        with torch.serialization.safe_globals(allowed):
            prototypes = torch.load(prototypes, map_location="cpu", weights_only=True)
    return torch.as_tensor(np.asarray(prototypes), dtype=torch.float32).T.contiguous()


def import_reference_checkpoint(path: str | Path, config: CALFConfig | None = None,
                                prototypes: object = None) -> CALF:
    """Build a :class:`CALF` from a ``state_dict`` saved by the authors' code (spec §8).

    ``seq_len``, ``pred_len`` and ``n_layers`` are read from the checkpoint; the rest of ``config``
    (backbone name or local path, LoRA settings, heads) must match how it was trained.

    Parameters
    ----------
    path
        The ``torch.save(model.state_dict())`` file (loaded with ``weights_only=True``).
    config
        Base configuration; default ``CALFConfig()`` (GPT-2).
    prototypes
        The authors' ``wte_pca_500.pt`` path or a (D, P) array. Without it the prototypes are
        recomputed from the checkpoint's word embeddings (§5), whose principal components can
        differ from the authors' file in sign, so forecasts then differ slightly.

    Returns
    -------
    CALF
        In eval mode, computing the authors' forecasts.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    blocks = {int(m.group(1)) for key in state
              if (m := re.match(r"gpt2\.base_model\.model\.h\.(\d+)\.", key))}
    d_model, seq_len = state["in_layer.linear.weight"].shape
    config = (config or CALFConfig()).replace(
        seq_len=int(seq_len), pred_len=int(state["out_layer.weight"].shape[0]),
        n_layers=len(blocks), llm_mode="llm")
    model = CALF(config)
    converted: dict[str, torch.Tensor] = {}
    text_state: dict[str, torch.Tensor] = {}
    for key, tensor in state.items():
        if key.startswith("gpt2_text."):
            text_state[key[len("gpt2_text."):]] = tensor
            continue
        for old, new in _REFERENCE_PREFIXES:
            if key.startswith(old):
                converted[new + key[len(old):]] = tensor
                break
        else:
            raise KeyError(f"unexpected key {key!r} in reference checkpoint {path}")
    branches = model.branches
    if branches.position_key is not None:
        converted["branches.text_position_embedding"] = text_state.pop(branches.position_key)
    for index, name in enumerate(branches.norm_keys):
        converted[f"branches.text_norm_{index}"] = text_state.pop(name)
    for name, tensor in text_state.items():  # the rest must equal the shared frozen weights
        shared = converted.get(f"branches.backbone.{name}",
                               converted.get(f"branches.backbone.{_lora_base(name)}"))
        if shared is None or not torch.equal(shared, tensor):
            raise ValueError(f"the checkpoint's textual branch weight {name!r} differs from the "
                             f"temporal branch's frozen copy; CALF shares one frozen backbone")
    if prototypes is not None:
        converted["cross_modal.prototypes"] = _load_reference_prototypes(prototypes)
    else:
        converted["cross_modal.prototypes"] = word_prototypes(
            converted["branches.backbone.wte.weight"], config.n_prototypes)
    result = model.load_state_dict(converted, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise KeyError(f"reference checkpoint does not fit: missing {result.missing_keys[:5]}, "
                       f"unexpected {result.unexpected_keys[:5]}")
    if int(d_model) != model.d_model:
        raise ValueError(f"checkpoint width {d_model} != backbone width {model.d_model}")
    return model.eval()


def _lora_base(name: str) -> str:
    """``h.0.attn.c_attn.weight`` -> ``h.0.attn.c_attn.base_layer.weight`` (peft's layout)."""
    module, _, leaf = name.rpartition(".")
    return f"{module}.base_layer.{leaf}"
