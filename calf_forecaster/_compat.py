"""Every use of a third-party private API, in one place; each is pinned by ``tests/test_compat.py``.

- peft: the per-layer flag that LoRA layers read in ``forward`` (``_disable_adapters``). peft's
  public switch, ``enable_adapters``, also flips ``requires_grad`` of the adapter weights, which
  would change what trains; the textual branch needs the adapters off for one call only.
- transformers (5.x): hidden states are collected by forward hooks that a model installs at its
  first forward, as local functions that pickle cannot store, found through a process-wide
  registry that ``PreTrainedModel.__init__`` fills and unpickling does not.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn

_PEFT_DISABLE_FLAG = "_disable_adapters"
_CAPTURING_HOOK_PREFIX = "install_output_capuring_hook."  # sic: transformers' spelling
_CAPTURING_HOOKS_FLAG = "_output_capturing_hooks_installed"


def lora_layers(module: nn.Module) -> list[nn.Module]:
    """The peft LoRA layers inside ``module`` (those that read the adapter-disable flag)."""
    return [m for m in module.modules() if hasattr(m, _PEFT_DISABLE_FLAG)]


@contextmanager
def adapters_disabled(layers: list[nn.Module]) -> Iterator[None]:
    """Run ``layers`` as if no adapter were injected (no LoRA matmuls, no LoRA dropout).

    Only the flag that peft's layers read in ``forward`` is flipped, and always restored;
    ``requires_grad`` is untouched.
    """
    for layer in layers:
        setattr(layer, _PEFT_DISABLE_FLAG, True)
    try:
        yield
    finally:
        for layer in layers:
            setattr(layer, _PEFT_DISABLE_FLAG, False)


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


def has_output_capturing_registry() -> bool:
    """Whether the installed transformers has the registry :func:`register_output_capturing` fills."""
    try:
        from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY  # noqa: F401
    except ImportError:
        return False
    return True
