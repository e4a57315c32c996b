"""Each private third-party API the package relies on (``calf_forecaster._compat``), pinned."""

from __future__ import annotations

import pickle

import pytest
import torch

from calf_forecaster import CALF
from calf_forecaster._compat import (
    adapters_disabled,
    drop_output_capturing_hooks,
    has_output_capturing_registry,
    lora_layers,
    register_output_capturing,
)
from calf_forecaster.testing import tiny_config, tiny_parts


def test_peft_layers_read_the_adapter_flag_and_it_is_always_restored() -> None:
    model = CALF(tiny_config(), tiny_parts(tiny_config())).eval()
    layers = lora_layers(model.branches.backbone)
    assert len(layers) == 2  # c_attn of both blocks
    for layer in layers:  # make LoRA matter: B is zero at initialisation
        torch.nn.init.normal_(layer.lora_B["default"].weight)
    x = torch.randn(3, 5, 32)
    layer = layers[0]
    with_lora = layer(x)
    with adapters_disabled(layers):
        assert all(layer.disable_adapters for layer in layers)
        torch.testing.assert_close(layer(x), layer.base_layer(x))  # no LoRA at all
    assert not any(layer.disable_adapters for layer in layers)
    torch.testing.assert_close(layer(x), with_lora)
    with pytest.raises(RuntimeError), adapters_disabled(layers):
        raise RuntimeError("inside")
    assert not any(layer.disable_adapters for layer in layers)  # restored after an error
    assert all(p.requires_grad for layer in layers for p in layer.lora_A.parameters())


def test_output_capturing_hooks_are_dropped_and_the_registry_refilled() -> None:
    model = CALF(tiny_config(), tiny_parts(tiny_config())).eval()
    x = torch.randn(2, 16, 3)
    expected = model(x).forecast  # the first forward installs transformers' hooks
    hooks = [h for m in model.modules() for h in m._forward_hooks.values()
             if getattr(h, "__qualname__", "").startswith("install_output_capuring_hook.")]
    if has_output_capturing_registry():
        assert hooks, "transformers no longer installs its capturing hooks lazily: revisit"
    drop_output_capturing_hooks(model)
    assert not [h for m in model.modules() for h in m._forward_hooks.values()
                if getattr(h, "__qualname__", "").startswith("install_output_capuring_hook.")]
    restored = pickle.loads(pickle.dumps(model))
    register_output_capturing(restored)
    torch.testing.assert_close(restored(x).forecast, expected)
    torch.testing.assert_close(model(x).forecast, expected)  # hooks come back at next forward
