"""Loading a Hugging Face backbone by name or path, truncation to K blocks, LoRA, and the
trainable-parameter policy of ``docs/method.md`` §2.

A backbone is any model that transformers' ``AutoModel`` builds, that accepts ``inputs_embeds`` and
returns ``hidden_states``. What differs between architectures (which modules LoRA wraps, where the
position table lives) is one :class:`BackboneFamily` entry in :data:`BACKBONE_FAMILIES`; adding an
architecture means adding an entry (see ``docs/adding-a-backbone.md``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from calf_forecaster.config import CALFConfig
from calf_forecaster.prototypes import cached_word_prototypes, embedding_fingerprint

logger = logging.getLogger(__name__)


class BackboneNotFoundError(OSError):
    """The backbone named in ``CALFConfig.backbone`` could not be loaded (offline, typo, no files)."""


class UnsupportedBackboneError(ValueError):
    """The model loaded as ``backbone`` lacks what CALF needs (word embeddings, hidden states)."""


@dataclass(frozen=True)
class BackboneFamily:
    """What CALF needs to know about one architecture family.

    Parameters
    ----------
    lora_target_modules
        Names of the attention input projections that LoRA wraps.
    fan_in_fan_out
        True where those projections store weights as (in, out), like GPT-2's ``Conv1D``.
    position_embedding
        Dotted path of the learned position table (an ``nn.Embedding``), or ``None`` where the
        architecture has none (rotary positions).
    """

    lora_target_modules: tuple[str, ...]
    fan_in_fan_out: bool
    position_embedding: str | None


#: Supported architectures by ``config.model_type``.
BACKBONE_FAMILIES: dict[str, BackboneFamily] = {
    "gpt2": BackboneFamily(("c_attn",), fan_in_fan_out=True, position_embedding="wpe"),
    "bert": BackboneFamily(("query", "key", "value"), False, "embeddings.position_embeddings"),
    "roberta": BackboneFamily(("query", "key", "value"), False, "embeddings.position_embeddings"),
    "llama": BackboneFamily(("q_proj", "k_proj", "v_proj"), False, None),
    "mistral": BackboneFamily(("q_proj", "k_proj", "v_proj"), False, None),
    "qwen2": BackboneFamily(("q_proj", "k_proj", "v_proj"), False, None),
}

_NORM_SUFFIXES = ("LayerNorm", "RMSNorm")


def backbone_family(model_type: str, config: CALFConfig) -> BackboneFamily:
    """The :class:`BackboneFamily` of ``model_type``, with ``config.lora_target_modules`` applied.

    Raises
    ------
    ValueError
        For an unknown architecture when ``lora_target_modules`` is not set.
    """
    family = BACKBONE_FAMILIES.get(model_type)
    if family is None:
        if config.lora_target_modules is None:
            raise ValueError(
                f"backbone architecture {model_type!r} has no default LoRA targets; set "
                f"`lora_target_modules` to the names of its attention input projections "
                f"(known architectures: {sorted(BACKBONE_FAMILIES)})"
            )
        return BackboneFamily(tuple(config.lora_target_modules), False, None)
    if config.lora_target_modules is not None:
        return BackboneFamily(tuple(config.lora_target_modules), family.fan_in_fan_out,
                              family.position_embedding)
    return family


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or os.sep in name and not _is_hub_id(name)


def _is_hub_id(name: str) -> bool:
    parts = name.split("/")
    return len(parts) == 2 and all(parts) and not name.startswith((".", "/"))


def _missing_backbone_message(name: str, error: Exception) -> str:
    if Path(name).expanduser().exists() or _looks_like_path(name):
        return (
            f"could not load the backbone from local path {name!r} ({error}). `backbone` must be a "
            f"directory written by `save_pretrained` (config.json plus weights)."
        )
    offline = (" $HF_HUB_OFFLINE is set, so only the local cache was tried."
               if hub_offline() else "")
    return (
        f"could not load the backbone {name!r} from the Hugging Face hub or its local cache "
        f"({type(error).__name__}).{offline} Without internet, save a copy once where it is reachable, e.g. "
        f"`python -c \"from transformers import AutoModel; "
        f"AutoModel.from_pretrained('{name}').save_pretrained('./{name.replace('/', '_')}')\"`, "
        f"copy that directory here and pass `backbone='./{name.replace('/', '_')}'`; or set "
        f"`pretrained=False` with a local directory holding only the model's config.json "
        f"(`calf_forecaster.backbone.save_backbone_config`) for random weights."
    )


def hub_offline() -> bool:
    """Whether ``$HF_HUB_OFFLINE`` asks for no network access (read at call time)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_backbone(config: CALFConfig, n_blocks: int | None = None) -> nn.Module:
    """Load the backbone of ``config``, keeping only its first blocks, in float32.

    Pre-trained weights come from ``from_pretrained`` (name or local path); with
    ``pretrained=False`` only the configuration is read and weights are initialised at random.
    With ``$HF_HUB_OFFLINE`` set, only local files are tried, so a missing model fails at once.

    Parameters
    ----------
    config
        Backbone name or path, ``n_layers``, ``pretrained``, ``revision``, ``trust_remote_code``.
    n_blocks
        Blocks to keep; default ``config.n_layers``. ``0`` keeps the embeddings only (what the
        ablations without a language model need).

    Raises
    ------
    BackboneNotFoundError
        If the configuration or weights cannot be found; the message says how to fix it.
    ValueError
        If ``n_layers`` exceeds the backbone's depth.
    """
    from transformers import AutoConfig, AutoModel

    location = str(Path(config.backbone).expanduser()) if config.backbone.startswith("~") \
        else config.backbone
    options = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    if hub_offline():
        options["local_files_only"] = True
    try:
        hf_config = AutoConfig.from_pretrained(location, **options)
    except (OSError, ValueError) as error:
        raise BackboneNotFoundError(_missing_backbone_message(config.backbone, error)) from error
    depth = getattr(hf_config, "num_hidden_layers", None)
    if depth is None:
        raise UnsupportedBackboneError(
            f"backbone {config.backbone!r} ({type(hf_config).__name__}) has no "
            f"`num_hidden_layers`: CALF needs a transformer language model (GPT-2, BERT, Llama, "
            f"...) whose blocks it can truncate; see docs/adding-a-backbone.md")
    check_fits_backbone(config, width=getattr(hf_config, "hidden_size", None), depth=depth,
                        vocabulary=getattr(hf_config, "vocab_size", None))
    hf_config.num_hidden_layers = config.n_layers if n_blocks is None else n_blocks
    if getattr(hf_config, "activation_function", None) == "gelu_new":
        # The same tanh-approximated GELU as one fused kernel (max difference ~5e-7): training
        # keeps one saved tensor per block instead of ~5, the ECL shape's peak memory drops ~5 GB.
        hf_config.activation_function = "gelu_pytorch_tanh"
    if config.pretrained:
        try:
            model = _quietly(AutoModel.from_pretrained, location, config=hf_config, **options)
        except OSError as error:
            raise BackboneNotFoundError(_missing_backbone_message(config.backbone, error)) from error
    else:
        model = AutoModel.from_config(hf_config, trust_remote_code=config.trust_remote_code)
    return model.float()


def check_fits_backbone(config: CALFConfig, width: int | None, depth: int | None = None,
                        vocabulary: int | None = None) -> None:
    """Refuse, in ONE error that lists every field to change, a config the backbone cannot take.

    The defaults are GPT-2 small's (12 heads, 500 prototypes, 6 of 12 blocks); another backbone
    may need other values. They are not adapted silently (that would change the architecture
    away from the published one without a word); the error proposes values instead.

    Parameters
    ----------
    config
        The network's configuration.
    width, depth, vocabulary
        The backbone's width D, number of blocks and vocabulary size (``None``: unknown).

    Raises
    ------
    ValueError
        Naming each of ``n_layers``, ``n_heads``, ``n_prototypes`` that does not fit.
    """
    problems = []
    if depth is not None and config.n_layers > depth:
        problems.append(f"`n_layers`={config.n_layers} exceeds the {depth} blocks of backbone "
                        f"{config.backbone!r}; set n_layers <= {depth}")
    if width is not None and width % config.n_heads:
        divisors = [h for h in range(1, min(width, 64) + 1) if width % h == 0]
        problems.append(f"`n_heads`={config.n_heads} must divide the backbone width D={width}; "
                        f"choose one of {divisors}")
    limit = min(v for v in (width, vocabulary) if v is not None) \
        if width is not None or vocabulary is not None else None
    if limit is not None and config.n_prototypes > limit:
        problems.append(f"`n_prototypes` must be between 1 and the embedding width D={width} "
                        f"(and the vocabulary size {vocabulary}), got {config.n_prototypes}; set "
                        f"n_prototypes <= {limit}")
    if len(problems) == 1:
        raise ValueError(problems[0])
    if problems:
        raise ValueError(f"backbone {config.backbone!r} (width {width}, {depth} blocks) does not "
                         f"fit {len(problems)} settings; change all of them:\n- "
                         + "\n- ".join(problems))


def _quietly(load: object, *args: object, **kwargs: object) -> nn.Module:
    """Call a transformers loader without its weight-loading progress bar and load report.

    The report lists the weights of the blocks CALF leaves out (expected, so not worth a
    warning); real problems still raise.
    """
    with quiet_transformers():
        return load(*args, **kwargs)  # type: ignore[operator]


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """No transformers progress bars or load reports inside the block (restored after)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if was_enabled:
            hf_logging.enable_progress_bar()


@dataclass(frozen=True, eq=False)
class BackboneParts:
    """Everything a :class:`~calf_forecaster.model.CALF` network is built from, already loaded.

    Building a network from parts does no I/O; :func:`load_backbone_parts` is where loading (and
    downloading) happens.

    Attributes
    ----------
    width
        Backbone width D.
    prototypes
        Word prototypes (P, D), float32.
    embedding_fingerprint
        SHA-256 of the backbone's word embeddings (see :func:`embedding_fingerprint`).
    model
        The truncated backbone (K blocks); ``None`` where an ablation replaces the language model.
    family
        LoRA targets and position table of ``model``'s architecture; ``None`` without a model.
    max_positions
        Position-table size of the backbone (most variate tokens), ``None`` if unbounded.
    """

    width: int
    prototypes: Tensor
    embedding_fingerprint: str
    model: nn.Module | None = None
    family: BackboneFamily | None = None
    max_positions: int | None = None


def word_embedding_matrix(model: nn.Module, name: str) -> Tensor:
    """The (V, D) input word-embedding matrix of ``model``.

    Raises
    ------
    UnsupportedBackboneError
        If ``model`` has no input word embeddings (e.g. a vision model).
    """
    getter = getattr(model, "get_input_embeddings", None)
    embeddings = getter() if callable(getter) else None
    weight = getattr(embeddings, "weight", None)
    if not isinstance(weight, Tensor) or weight.ndim != 2:
        raise UnsupportedBackboneError(
            f"backbone {name!r} ({type(model).__name__}) provides no input word embeddings "
            f"(get_input_embeddings() gave {type(embeddings).__name__}). CALF needs a language "
            f"model with a (vocabulary, width) word-embedding matrix, from which it computes its "
            f"word prototypes, that accepts `inputs_embeds` and returns hidden states: e.g. "
            f"GPT-2, BERT, RoBERTa, Llama, Mistral or Qwen2")
    return weight


def backbone_parts(model: nn.Module, config: CALFConfig, prototypes: Tensor | None = None,
                   cache_dir: str | Path | None = None) -> BackboneParts:
    """:class:`BackboneParts` of a loaded backbone ``model`` (prototypes computed or cached).

    Parameters
    ----------
    model
        The truncated backbone (``load_backbone``); kept in the parts only for ``llm_mode="llm"``.
    config
        The network's configuration.
    prototypes
        Known prototypes (P, D), e.g. from a saved model; computed (and cached) otherwise.
    cache_dir
        Prototype cache folder; default ``calf_forecaster.paths.cache_dir()``.
    """
    model.config.use_cache = False
    embeddings = word_embedding_matrix(model, config.backbone)  # (V, D)
    fingerprint = embedding_fingerprint(embeddings)
    if prototypes is None:
        prototypes = cached_word_prototypes(embeddings, config.n_prototypes, cache_dir,
                                            fingerprint=fingerprint)  # (P, D)
    width = int(embeddings.shape[1])
    if config.llm_mode != "llm":
        return BackboneParts(width, prototypes, fingerprint)
    return BackboneParts(width, prototypes, fingerprint, model=model,
                         family=backbone_family(model.config.model_type, config),
                         max_positions=max_variates(model.config))


def load_backbone_parts(config: CALFConfig, prototypes: Tensor | None = None,
                        cache_dir: str | Path | None = None) -> BackboneParts:
    """Load what :class:`~calf_forecaster.model.CALF` needs for ``config``: the one I/O step.

    With ``llm_mode="llm"`` the first ``n_layers`` blocks are loaded; the ablations that replace
    the language model load the embeddings only (no block). ``prototypes`` and ``cache_dir`` are
    those of :func:`backbone_parts`.
    """
    model = load_backbone(config, n_blocks=None if config.llm_mode == "llm" else 0)
    return backbone_parts(model, config, prototypes, cache_dir)


def save_backbone_config(directory: str | Path, model_type: str = "gpt2", **overrides: object) -> Path:
    """Write the default configuration of ``model_type`` (``overrides`` applied) to ``directory``.

    With ``pretrained=False`` this is all CALF needs to build a randomly initialised backbone
    offline; ``save_backbone_config(d)`` is GPT-2 small's architecture.

    Returns
    -------
    pathlib.Path
        ``directory``.
    """
    from transformers import AutoConfig

    directory = Path(directory)
    AutoConfig.for_model(model_type, **overrides).save_pretrained(directory)
    return directory


def add_lora(backbone: nn.Module, config: CALFConfig, family: BackboneFamily) -> nn.Module:
    """Inject LoRA adapters (peft) into the attention input projections of ``backbone``, in place."""
    from peft import LoraConfig, inject_adapter_in_model

    lora_config = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(family.lora_target_modules),
        fan_in_fan_out=family.fan_in_fan_out,
        bias="none",
    )
    return inject_adapter_in_model(lora_config, backbone)


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalisation layer (LayerNorm or RMSNorm of any implementation)."""
    return isinstance(module, nn.LayerNorm) or type(module).__name__.endswith(_NORM_SUFFIXES)


def norm_parameter_names(backbone: nn.Module) -> list[str]:
    """Names of all normalisation-layer parameters of ``backbone``, in module order."""
    return [
        f"{module_name}.{param_name}" if module_name else param_name
        for module_name, module in backbone.named_modules()
        if is_norm(module)
        for param_name, _ in module.named_parameters(recurse=False)
    ]


def apply_trainable_policy(backbone: nn.Module, family: BackboneFamily) -> list[str]:
    """The temporal branch's trainable-parameter policy (docs/method.md §2), applied in place.

    Trains the LoRA matrices, every normalisation layer and the position table; freezes the rest.

    Returns
    -------
    list of str
        Names of the parameters left trainable.
    """
    trainable = set(norm_parameter_names(backbone))
    if family.position_embedding is not None:
        trainable.add(f"{family.position_embedding}.weight")
    names = []
    for name, parameter in backbone.named_parameters():
        keep = name in trainable or ".lora_A." in name or ".lora_B." in name
        parameter.requires_grad_(keep)
        if keep:
            names.append(name)
    return names


def max_variates(backbone_config: object) -> int | None:
    """How many variate tokens the backbone's position table admits (``None``: no table limit)."""
    return getattr(backbone_config, "max_position_embeddings", None)


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``module`` (only those with ``requires_grad`` if asked)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def as_tensor_dict(module: nn.Module, names: list[str]) -> dict[str, torch.Tensor]:
    """Detached clones of the named parameters of ``module``."""
    parameters = dict(module.named_parameters())
    return {name: parameters[name].detach().clone() for name in names}
