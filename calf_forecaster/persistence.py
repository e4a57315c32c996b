"""Saving and loading fitted CALF networks, the checkpoint rule, and the authors' checkpoints.

A saved model is a directory with two files, loadable without pickle:

``calf.json``
    Format version, the :class:`CALFConfig`, the backbone's embedding fingerprint, the SHA-256 of
    the weights file and free-form metadata (adapters store the column order there: the backbone
    is causal over variates).
``weights.safetensors``
    Only the state that is not the pre-trained backbone's (``CALF.portable_state_dict``): the
    trainable weights, the word prototypes and, for a randomly initialised backbone, its weights.

Loading rebuilds the backbone from its name or path (or a new location: ``backbone=...`` or the
:func:`backbone_location` context, which also reaches models inside pickles) and checks that its
word embeddings are the ones the model was trained with. Saving writes ``calf.json`` last and
atomically, and loading checks the weights' hash, so an interrupted or corrupted save is refused
with a clear error instead of loading.

The checkpoint rule, shared by :func:`save_calf`, both Lightning modules and their checkpoint
loading: :func:`strip_backbone` removes the frozen pre-trained weights from a state dict, and
:func:`check_backbone` refuses a backbone whose embedding fingerprint differs.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors_bytes
from safetensors.torch import save as save_tensors_bytes

from calf_forecaster.backbone import (
    BackboneParts,
    backbone_family,
    load_backbone,
    load_backbone_parts,
    max_variates,
)
from calf_forecaster.config import CALFConfig, TrainingConfig
from calf_forecaster.model import CALF
from calf_forecaster.prototypes import embedding_fingerprint, word_prototypes

logger = logging.getLogger(__name__)

FORMAT_NAME = "calf-forecaster"
FORMAT_VERSION = 2
CONFIG_FILE = "calf.json"
WEIGHTS_FILE = "weights.safetensors"
#: Checkpoint entry (Lightning checkpoints of both modules) with the embedding fingerprint.
FINGERPRINT_KEY = "calf_embedding_fingerprint"
PROTOTYPES_KEY = "cross_modal.prototypes"

_RELOCATED_BACKBONE: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "calf_relocated_backbone", default=None)


class BackboneMismatchError(ValueError):
    """The backbone found at load time is not the one the saved model was trained with."""


class CorruptModelError(ValueError):
    """A saved model or checkpoint is truncated, corrupted or incomplete."""


# ---------------------------------------------------------------------- the checkpoint rule


def has_other_backbone(model: CALF, fingerprint: str | None) -> bool:
    """Whether ``model``'s pre-trained backbone differs from the one whose embeddings gave
    ``fingerprint``; always ``False`` where the backbone is saved with the model (random weights,
    or no LLM) or no fingerprint was recorded."""
    return bool(model.backbone_state_keys) and fingerprint is not None \
        and fingerprint != model.embedding_fingerprint


def check_backbone(model: CALF, fingerprint: str | None, fix: str) -> None:
    """Raise :class:`BackboneMismatchError` (ending in ``fix``) if the backbones differ."""
    if has_other_backbone(model, fingerprint):
        raise BackboneMismatchError(
            f"the backbone {model.config.backbone!r} has other word embeddings than the one this "
            f"model was trained with; {fix}")


def frozen_backbone_keys(model: CALF, prefix: str = "") -> set[str]:
    """State-dict keys (under ``prefix``) rebuilt from the pre-trained backbone, never saved.

    Backbone weights that something made trainable since construction (e.g. darts'
    ``enable_finetuning``) are trained state and are kept.
    """
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return {f"{prefix}{key}" for key in model.backbone_state_keys - trainable}


def strip_backbone(state: Mapping[str, Any], model: CALF, prefix: str = "") -> dict[str, Any]:
    """``state`` without the frozen pre-trained backbone's entries (``prefix`` + CALF keys)."""
    dropped = frozen_backbone_keys(model, prefix)
    return {key: value for key, value in state.items() if key not in dropped}


def check_complete(state: Mapping[str, Any], model: CALF, prefix: str = "",
                   what: str = "checkpoint") -> None:
    """Raise :class:`CorruptModelError` if ``state`` lacks any saved (non-backbone) entry."""
    expected = {f"{prefix}{key}" for key in model.state_dict()} - frozen_backbone_keys(model,
                                                                                     prefix)
    missing = sorted(expected - set(state))
    if missing:
        raise CorruptModelError(f"the {what} does not fit this CALF configuration or is "
                                f"incomplete: missing {missing[:5]}")


# ---------------------------------------------------------------------- saving and loading


@contextmanager
def backbone_location(location: str | os.PathLike[str]) -> Iterator[None]:
    """Load every CALF model inside this block with its backbone from ``location``.

    For models whose backbone moved since saving, wherever the load happens: ``load_calf``,
    unpickling an sktime ``CALFForecaster`` (or sktime's ``load``), ``CALFPipeline.load``. The
    embedding check still applies.

    Examples
    --------
    >>> import pickle  # doctest: +SKIP
    >>> with backbone_location("/models/gpt2"):  # doctest: +SKIP
    ...     forecaster = pickle.loads(serialised)
    """
    token = _RELOCATED_BACKBONE.set(os.fspath(location))
    try:
        yield
    finally:
        _RELOCATED_BACKBONE.reset(token)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def serialize_calf(model: CALF, metadata: dict[str, Any] | None = None) -> dict[str, bytes]:
    """The files of a saved model, in memory: ``{file name: content}`` (see :func:`save_calf`)."""
    tensors = {name: tensor.detach().to("cpu").contiguous()
               for name, tensor in model.portable_state_dict().items()}
    weights = save_tensors_bytes(tensors)
    document = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "config": model.config.to_dict(),
        "embedding_fingerprint": model.embedding_fingerprint,
        "weights_sha256": _sha256(weights),
        "metadata": metadata or {},
    }
    return {WEIGHTS_FILE: weights,
            CONFIG_FILE: json.dumps(document, indent=2, sort_keys=True).encode()}


def save_calf(model: CALF, directory: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save ``model`` (config, non-backbone weights, ``metadata``) into ``directory``.

    The save is atomic for readers: an existing ``calf.json`` is removed first and the new one
    written last (each file through a temporary name), so an interrupted save leaves no
    loadable-looking model, and ``calf.json`` holds the weights' hash.

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
    return write_model_files(directory, serialize_calf(model, metadata))


def write_model_files(directory: str | Path, files: Mapping[str, bytes]) -> Path:
    """Write saved-model ``files`` into ``directory`` atomically for readers.

    An existing ``calf.json`` is removed first and the new one written last, each file through
    a temporary name, so an interrupted write leaves no loadable-looking model.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).unlink(missing_ok=True)
    for name in (WEIGHTS_FILE, CONFIG_FILE):  # the config, which marks a model, last
        temporary = directory / f".{name}.tmp{os.getpid()}"
        temporary.write_bytes(files[name])
        os.replace(temporary, directory / name)
    return directory


def read_model_files(directory: str | Path) -> dict[str, bytes]:
    """The saved-model files present in ``directory``."""
    directory = Path(directory)
    return {name: (directory / name).read_bytes() for name in (CONFIG_FILE, WEIGHTS_FILE)
            if (directory / name).is_file()}


def _upgrade_document(document: dict[str, Any]) -> dict[str, Any]:
    """Read format 1, whose config also held the training-only loss fields (now dropped)."""
    if document.get("format_version") == 1:
        training = set(TrainingConfig.__dataclass_fields__)
        document = {**document, "config": {k: v for k, v in document["config"].items()
                                           if k not in training}}
    return document


def deserialize_calf(files: Mapping[str, bytes], map_location: str | torch.device = "cpu",
                     backbone: str | os.PathLike[str] | None = None,
                     check_backbone_weights: bool = True, source: str = "saved model",
                     config_overrides: Mapping[str, Any] | None = None,
                     ) -> tuple[CALF, dict[str, Any]]:
    """Inverse of :func:`serialize_calf`; see :func:`load_calf` for the parameters."""
    if CONFIG_FILE not in files:
        raise FileNotFoundError(f"no saved CALF model in {source} (missing {CONFIG_FILE}; a "
                                f"save that was interrupted leaves none)")
    try:
        document = json.loads(files[CONFIG_FILE])
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CorruptModelError(f"{CONFIG_FILE} of {source} is corrupted ({error}); save the "
                                f"model again") from error
    if not isinstance(document, dict):
        raise CorruptModelError(f"{CONFIG_FILE} of {source} is not a CALF model description (a "
                                f"JSON object, got {type(document).__name__}); save the model "
                                f"again")
    version = document.get("format_version")
    if document.get("format") != FORMAT_NAME or not isinstance(version, int) \
            or not 1 <= version <= FORMAT_VERSION:
        raise ValueError(f"{source} is not a CALF model of a format this version reads "
                         f"(format {document.get('format')!r}, version {version!r})")
    missing = [key for key in ("config", "embedding_fingerprint") if key not in document]
    if missing or not isinstance(document["config"], dict):
        raise CorruptModelError(f"{CONFIG_FILE} of {source} is incomplete (missing or invalid "
                                f"{missing or ['config']}); save the model again")
    document = _upgrade_document(document)
    weights = files.get(WEIGHTS_FILE)
    expected_hash = document.get("weights_sha256")
    if weights is None or (expected_hash is not None and _sha256(weights) != expected_hash):
        raise CorruptModelError(f"{WEIGHTS_FILE} of {source} is missing, truncated or does not "
                                f"belong to its {CONFIG_FILE}; save the model again")
    try:
        state = load_tensors_bytes(weights)
    except (SafetensorError, ValueError, OSError) as error:
        raise CorruptModelError(f"{WEIGHTS_FILE} of {source} is unreadable ({error}); save the "
                                f"model again") from error
    location = backbone if backbone is not None else _RELOCATED_BACKBONE.get()
    config = CALFConfig.from_dict({**document["config"], **(config_overrides or {}),
                                   **({"backbone": os.fspath(location)} if location else {})})
    if PROTOTYPES_KEY not in state:
        raise CorruptModelError(f"{source} holds no word prototypes ({PROTOTYPES_KEY})")
    model = CALF(config, load_backbone_parts(config, prototypes=state[PROTOTYPES_KEY]))
    fix = ("point `backbone` at the original (load_calf(..., backbone=...) or the "
           "calf_forecaster.persistence.backbone_location context), or pass "
           "check_backbone_weights=False to load anyway")
    if check_backbone_weights:
        check_backbone(model, document["embedding_fingerprint"], fix)
    check_complete(state, model, what=source)
    model.load_portable_state_dict(state)
    if not model.backbone_state_keys:  # the saved backbone replaced the loaded one
        model.embedding_fingerprint = document["embedding_fingerprint"]
    return model.to(map_location).eval(), document.get("metadata") or {}


def load_calf(directory: str | Path, map_location: str | torch.device = "cpu",
              backbone: str | os.PathLike[str] | None = None,
              check_backbone_weights: bool = True,
              config_overrides: Mapping[str, Any] | None = None) -> tuple[CALF, dict[str, Any]]:
    """Load a model written by :func:`save_calf`, in eval mode.

    Parameters
    ----------
    directory
        The saved model's directory.
    map_location
        Device to put the weights on.
    backbone
        Where the backbone is now, if it moved since saving (a hub name or local directory);
        default: the saved location, or that of an enclosing :func:`backbone_location`.
    check_backbone_weights
        Refuse a backbone whose word embeddings differ from the training backbone's.
    config_overrides
        Other config fields to change before rebuilding (``{"backbone": ...}`` works too).

    Returns
    -------
    model, metadata

    Raises
    ------
    FileNotFoundError
        If ``directory`` holds no saved CALF model.
    CorruptModelError
        If the files are truncated, corrupted or do not belong together.
    BackboneMismatchError
        If the rebuilt backbone is not the one the model was trained with.
    """
    return deserialize_calf(read_model_files(directory), map_location, backbone,
                            check_backbone_weights, source=str(directory),
                            config_overrides=config_overrides)


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


def _numpy_array_globals() -> list[object]:
    """What unpickling a plain numpy array needs, under numpy 2's and numpy 1.x's names.

    Only array reconstruction and dtypes: no arbitrary code runs (``weights_only=True``).
    """
    reconstruct = np._core.multiarray._reconstruct
    dtypes = [getattr(np.dtypes, name) for name in dir(np.dtypes) if name.endswith("DType")]
    return [np.ndarray, np.dtype, reconstruct, *dtypes,
            (reconstruct, "numpy.core.multiarray._reconstruct"),  # pickled by numpy 1.x
            (np.ndarray, "numpy.core.multiarray.ndarray")]


def _load_reference_prototypes(prototypes: object) -> torch.Tensor:
    """The reference's ``wte_pca_500.pt`` (a pickled (D, P) numpy array) or an array -> (P, D)."""
    if isinstance(prototypes, (str, Path)):
        with torch.serialization.safe_globals(_numpy_array_globals()):
            prototypes = torch.load(prototypes, map_location="cpu", weights_only=True)
    return torch.as_tensor(np.asarray(prototypes), dtype=torch.float32).T.contiguous()


def import_reference_checkpoint(path: str | Path, config: CALFConfig | None = None,
                                prototypes: object = None) -> CALF:
    """Build a :class:`CALF` from a ``state_dict`` saved by the authors' code (method §8).

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
    embeddings = state["gpt2.base_model.model.wte.weight"]  # (V, D)
    if prototypes is not None:
        prototype_tensor = _load_reference_prototypes(prototypes)
    else:
        prototype_tensor = word_prototypes(embeddings, config.n_prototypes)
    # The checkpoint holds every backbone weight: only the architecture is needed, no download.
    skeleton = load_backbone(config.replace(pretrained=False))
    skeleton.config.use_cache = False
    parts = BackboneParts(int(d_model), prototype_tensor, embedding_fingerprint(embeddings),
                          model=skeleton,
                          family=backbone_family(skeleton.config.model_type, config),
                          max_positions=max_variates(skeleton.config))
    model = CALF(config, parts)
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
    converted[PROTOTYPES_KEY] = prototype_tensor
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
