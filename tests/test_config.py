from __future__ import annotations

import dataclasses

import pytest

from calf_forecaster import CALFConfig, TrainingConfig


def test_defaults_are_the_reference_configuration() -> None:
    config = CALFConfig()
    assert (config.seq_len, config.pred_len, config.backbone, config.n_layers) == (96, 96, "gpt2", 6)
    assert (config.n_prototypes, config.lora_r, config.lora_alpha, config.lora_dropout) == (500, 8, 32, 0.1)
    assert (config.n_heads, config.encoder_ff_dim, config.dropout) == (12, 2048, 0.1)
    assert (config.supervised_weight, config.output_weight, config.feature_weight) == (1.0, 1.0, 0.01)
    assert (config.feature_decay, config.loss, config.pretrained) == (0.8, "l1", True)
    assert config.trust_remote_code is False
    recipe = TrainingConfig()
    assert (recipe.learning_rate, recipe.feature_learning_rate) == (5e-4, 1e-4)
    assert (recipe.cosine_t_max, recipe.min_learning_rate, recipe.seed) == (20, 1e-8, 2021)


@pytest.mark.parametrize(("field", "value"), [
    ("seq_len", 0), ("pred_len", -1), ("n_layers", 1.5), ("n_prototypes", 0), ("lora_r", True),
    ("lora_alpha", 0), ("lora_dropout", 1.0), ("dropout", -0.1), ("loss", "huber"),
    ("llm_mode", "gpt"), ("feature_decay", 0.0), ("output_weight", -1.0), ("backbone", ""),
    ("pretrained", "yes"), ("lora_target_modules", ()), ("n_heads", 0),
])
def test_bad_value_raises_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"`{field}`"):
        CALFConfig(**{field: value})


@pytest.mark.parametrize(("field", "value"), [
    ("learning_rate", 0.0), ("batch_size", 0), ("patience", 0), ("seed", -1), ("max_epochs", 2.0),
])
def test_bad_training_value_raises_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"`{field}`"):
        TrainingConfig(**{field: value})


def test_config_is_frozen_and_round_trips_through_dict() -> None:
    config = CALFConfig(seq_len=48, lora_target_modules=["c_attn"], llm_mode="attention")
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seq_len = 1  # type: ignore[misc]
    assert config.lora_target_modules == ("c_attn",)
    assert CALFConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown CALFConfig fields"):
        CALFConfig.from_dict({"seq_len": 4, "horizon": 3})
    assert config.replace(pred_len=7).pred_len == 7
