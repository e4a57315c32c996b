from __future__ import annotations

import pytest
import torch

from calf_forecaster import CALF
from calf_forecaster.backbone import (
    BackboneNotFoundError,
    apply_trainable_policy,
    backbone_family,
    load_backbone,
    save_backbone_config,
)
from conftest import tiny_config


def test_loads_local_directory_truncated_to_n_layers(tiny_gpt2) -> None:
    from transformers import GPT2Model

    backbone = load_backbone(tiny_config(tiny_gpt2, n_layers=1))
    assert len(backbone.h) == 1 and backbone.config.n_layer == 1
    original = GPT2Model.from_pretrained(tiny_gpt2)
    assert torch.equal(backbone.h[0].attn.c_attn.weight, original.h[0].attn.c_attn.weight)
    assert torch.equal(backbone.wte.weight, original.wte.weight)


def test_pretrained_false_keeps_architecture_with_other_weights(tiny_gpt2) -> None:
    pretrained = load_backbone(tiny_config(tiny_gpt2))
    torch.manual_seed(123)
    random = load_backbone(tiny_config(tiny_gpt2, pretrained=False))
    assert [n for n, _ in random.named_parameters()] == [n for n, _ in pretrained.named_parameters()]
    assert not torch.equal(random.h[0].mlp.c_fc.weight, pretrained.h[0].mlp.c_fc.weight)


def test_config_only_directory_builds_random_gpt2_small_offline(tmp_path) -> None:
    save_backbone_config(tmp_path)
    config = tiny_config(tmp_path, pretrained=False, n_layers=1, n_heads=12, n_prototypes=8)
    backbone = load_backbone(config)
    assert backbone.config.n_embd == 768 and backbone.wte.weight.shape == (50257, 768)
    with pytest.raises(BackboneNotFoundError, match="local path"):
        load_backbone(config.replace(pretrained=True))


def test_missing_hub_model_raises_with_a_fix(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneNotFoundError) as info:
        load_backbone(tiny_config("calf-test-no-such-model"))
    message = str(info.value)
    assert "save_pretrained" in message and "backbone='./calf-test-no-such-model'" in message
    with pytest.raises(BackboneNotFoundError, match="local path"):
        load_backbone(tiny_config("./no/such/dir"))


def test_too_many_layers_names_n_layers(tiny_gpt2) -> None:
    with pytest.raises(ValueError, match="`n_layers`=3 exceeds the 2 blocks"):
        load_backbone(tiny_config(tiny_gpt2, n_layers=3))


def test_unknown_architecture_needs_lora_targets() -> None:
    config = tiny_config("x")
    with pytest.raises(ValueError, match="`lora_target_modules`"):
        backbone_family("falcon_mamba", config)
    family = backbone_family("falcon_mamba", config.replace(lora_target_modules=("in_proj",)))
    assert family.lora_target_modules == ("in_proj",) and family.position_embedding is None
    assert backbone_family("gpt2", config).fan_in_fan_out is True


def test_policy_trains_only_norms_position_table_and_lora(tiny_gpt2) -> None:
    from calf_forecaster.backbone import add_lora

    config = tiny_config(tiny_gpt2)
    backbone = load_backbone(config)
    family = backbone_family("gpt2", config)
    names = apply_trainable_policy(add_lora(backbone, config, family), family)
    assert names == [
        "wpe.weight",
        "h.0.ln_1.weight", "h.0.ln_1.bias",
        "h.0.attn.c_attn.lora_A.default.weight", "h.0.attn.c_attn.lora_B.default.weight",
        "h.0.ln_2.weight", "h.0.ln_2.bias",
        "h.1.ln_1.weight", "h.1.ln_1.bias",
        "h.1.attn.c_attn.lora_A.default.weight", "h.1.attn.c_attn.lora_B.default.weight",
        "h.1.ln_2.weight", "h.1.ln_2.bias",
        "ln_f.weight", "ln_f.bias",
    ]
    lora_a = backbone.h[0].attn.c_attn.lora_A["default"].weight
    assert lora_a.shape == (8, 32)  # (r, D): fan_in_fan_out handled for GPT-2's Conv1D


def test_minilm_second_architecture_trains_and_predicts(minilm_dir) -> None:
    """A real pre-trained BERT-family model: LoRA on query/key/value, its own norms and positions."""
    config = tiny_config(minilm_dir, n_layers=2, n_heads=12, n_prototypes=32)
    model = CALF.from_pretrained(config)
    trainable = [n for n in model.trainable_parameter_names() if n.startswith("branches.backbone.")]
    assert "branches.backbone.embeddings.position_embeddings.weight" in trainable
    assert "branches.backbone.embeddings.LayerNorm.weight" in trainable
    assert "branches.backbone.encoder.layer.1.attention.self.value.lora_B.default.weight" in trainable
    assert not any("word_embeddings" in n or "intermediate" in n for n in trainable)
    assert model.d_model == 384 and model.cross_modal.prototypes.shape == (32, 384)
    output = model.train()(torch.randn(2, 16, 3), with_text_branch=True)
    assert output.forecast.shape == output.text_forecast.shape == (2, 8, 3)
    assert len(output.time_features) == 3


def test_a_backbone_that_fits_no_default_gets_one_error_listing_every_field(minilm_dir) -> None:
    """MiniLM-L6 (width 384, 6 blocks, BERT) with GPT-2 small's defaults except n_layers=8:
    n_layers, n_heads and n_prototypes are all named in one error, before any weight loads."""
    from calf_forecaster import CALF, CALFConfig

    config = CALFConfig(backbone=str(minilm_dir), n_layers=8, n_heads=7, n_prototypes=500)
    with pytest.raises(ValueError, match="does not fit 3 settings") as error:
        CALF.from_pretrained(config)
    message = str(error.value)
    assert "`n_layers`=8 exceeds the 6 blocks" in message
    assert "`n_heads`=7 must divide the backbone width D=384" in message
    assert "set n_prototypes <= 384" in message
    fixed = config.replace(n_layers=2, n_heads=12, n_prototypes=64)  # what the error proposes
    assert CALF.from_pretrained(fixed).d_model == 384
