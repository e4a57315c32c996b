"""Loading a Hugging Face backbone by name or path, truncation to K blocks, LoRA, and the
trainable-parameter policy of ``calf-method.md`` §2.

A backbone is any model that transformers' ``AutoModel`` builds, that accepts ``inputs_embeds`` and
returns ``hidden_states``. What differs between architectures (which modules LoRA wraps, where the
position table lives) is one :class:`BackboneFamily` entry in :data:`BACKBONE_FAMILIES`; adding an
architecture means adding an entry (see ``docs/adding-a-backbone.md``).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from calf_forecaster.config import CALFConfig

logger = logging.getLogger(__name__)


class BackboneNotFoundError(OSError):
    """The backbone named in ``CALFConfig.backbone`` could not be loaded (offline, typo, no files)."""


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
    return (
        f"could not load the backbone {name!r} from the Hugging Face hub or its local cache "
        f"({type(error).__name__}). Without internet, save a copy once where it is reachable, e.g. "
        f"`python -c \"from transformers import AutoModel; "
        f"AutoModel.from_pretrained('{name}').save_pretrained('./{name.replace('/', '_')}')\"`, "
        f"copy that directory here and pass `backbone='./{name.replace('/', '_')}'`; or set "
        f"`pretrained=False` with a local directory holding only the model's config.json "
        f"(`calf_forecaster.backbone.save_backbone_config`) for random weights."
    )


def load_backbone(config: CALFConfig) -> nn.Module:
    """Load the backbone of ``config``, keeping only its first ``n_layers`` blocks, in float32.

    Pre-trained weights come from ``from_pretrained`` (name or local path); with
    ``pretrained=False`` only the configuration is read and weights are initialised at random.

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
    try:
        hf_config = AutoConfig.from_pretrained(location, **options)
    except (OSError, ValueError) as error:
        raise BackboneNotFoundError(_missing_backbone_message(config.backbone, error)) from error
    depth = hf_config.num_hidden_layers
    if config.n_layers > depth:
        raise ValueError(
            f"`n_layers`={config.n_layers} exceeds the {depth} blocks of backbone "
            f"{config.backbone!r}; set n_layers <= {depth}"
        )
    hf_config.num_hidden_layers = config.n_layers  # build only the first K blocks
    if getattr(hf_config, "activation_function", None) == "gelu_new":
        # The same tanh-approximated GELU as one fused kernel (max difference ~5e-7): training
        # keeps one saved tensor per block instead of ~5, the ECL shape's peak memory drops ~5 GB.
        hf_config.activation_function = "gelu_pytorch_tanh"
    if config.pretrained:
        try:
            model = AutoModel.from_pretrained(location, config=hf_config, **options)
        except OSError as error:
            raise BackboneNotFoundError(_missing_backbone_message(config.backbone, error)) from error
    else:
        model = AutoModel.from_config(hf_config, trust_remote_code=config.trust_remote_code)
    return model.float()


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
    """The temporal branch's trainable-parameter policy (spec §2), applied in place.

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


# transformers (5.x) collects hidden states with forward hooks that it installs at a model's first
# forward, as local functions that pickle cannot store, and finds through a process-wide registry
# filled by ``PreTrainedModel.__init__``, which unpickling does not run. The two functions below
# keep models that hold a backbone picklable; ``tests/test_model.py`` pins them.
_CAPTURING_HOOK_PREFIX = "install_output_capuring_hook."  # sic: transformers' spelling
_CAPTURING_HOOKS_FLAG = "_output_capturing_hooks_installed"


def drop_output_capturing_hooks(module: nn.Module) -> None:
    """Remove transformers' hidden-state hooks from ``module``; they return at the next forward."""
    for submodule in module.modules():
        for hooks in (submodule._forward_hooks, submodule._forward_pre_hooks):
            for key in [key for key, hook in hooks.items()
                        if getattr(hook, "__qualname__", "").startswith(_CAPTURING_HOOK_PREFIX)]:
                del hooks[key]
        submodule.__dict__.pop(_CAPTURING_HOOKS_FLAG, None)


def register_output_capturing(module: nn.Module) -> None:
    """Register the output-capture specification of every transformers model inside ``module``.

    Needed after unpickling in a process that never constructed a model of the same class;
    a no-op with transformers versions without that registry.
    """
    try:
        from transformers import PreTrainedModel
        from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY
    except ImportError:
        return
    for submodule in module.modules():
        if isinstance(submodule, PreTrainedModel):
            _CAN_RECORD_REGISTRY[submodule] = submodule._can_record_outputs
