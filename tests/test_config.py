from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from calf_forecaster import CALFConfig, TrainingConfig


def test_defaults_are_the_reference_configuration() -> None:
    config = CALFConfig()
    assert (config.seq_len, config.pred_len, config.backbone, config.n_layers) == (96, 96, "gpt2", 6)
    assert (config.n_prototypes, config.lora_r, config.lora_alpha, config.lora_dropout) == (500, 8, 32, 0.1)
    assert (config.n_heads, config.encoder_ff_dim, config.dropout) == (12, 2048, 0.1)
    assert config.pretrained is True
    assert config.trust_remote_code is False
    recipe = TrainingConfig()
    assert (recipe.supervised_weight, recipe.output_weight, recipe.feature_weight) == (1.0, 1.0, 0.01)
    assert (recipe.feature_decay, recipe.loss) == (0.8, "l1")
    assert (recipe.batch_size, recipe.max_epochs, recipe.patience) == (256, 100, 10)
    assert (recipe.validation_size, recipe.scale, recipe.optimizer_grouping) == (0.2, True, "paper")
    assert (recipe.learning_rate, recipe.feature_learning_rate) == (5e-4, 1e-4)
    assert (recipe.cosine_t_max, recipe.min_learning_rate, recipe.seed) == (20, 1e-8, 2021)


@pytest.mark.parametrize(("field", "value"), [
    ("seq_len", 0), ("pred_len", -1), ("n_layers", 1.5), ("n_prototypes", 0), ("lora_r", True),
    ("lora_alpha", 0), ("lora_dropout", 1.0), ("dropout", -0.1),
    ("llm_mode", "gpt"), ("backbone", ""),
    ("pretrained", "yes"), ("lora_target_modules", ()), ("n_heads", 0),
])
def test_bad_value_raises_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"`{field}`"):
        CALFConfig(**{field: value})


@pytest.mark.parametrize(("field", "value"), [
    ("learning_rate", 0.0), ("batch_size", 0), ("patience", 0), ("seed", -1), ("max_epochs", 2.0),
    ("loss", "huber"), ("feature_decay", 0.0), ("output_weight", -1.0), ("max_epochs", -1),
    ("validation_size", 1.5), ("validation_size", -1), ("validation_size", "end"),
    ("cosine_t_max", 0), ("optimizer_grouping", "authors"), ("scale", "yes"),
    ("learning_rate", float("nan")), ("seed", "seed"),
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


def test_numpy_scalars_are_accepted_and_stored_as_python_numbers() -> None:
    """A grid built with np.arange gives numpy scalars: accepted wherever int/float are."""
    config = CALFConfig(seq_len=np.int64(24), pred_len=np.int32(12), lora_alpha=np.float32(16.0),
                        dropout=np.float64(0.2))
    assert (config.seq_len, config.pred_len) == (24, 12) and type(config.seq_len) is int
    assert type(config.lora_alpha) is float and config.dropout == 0.2
    recipe = TrainingConfig(learning_rate=np.float64(1e-3), batch_size=np.int64(32),
                            max_epochs=np.int16(0), seed=np.uint8(3), validation_size=np.int64(24))
    assert (recipe.batch_size, recipe.max_epochs, recipe.seed) == (32, 0, 3)
    assert type(recipe.learning_rate) is float and type(recipe.validation_size) is int
    with pytest.raises(ValueError, match="`seq_len`"):
        CALFConfig(seq_len=np.bool_(True))


def test_max_epochs_zero_and_constant_schedule_are_legal() -> None:
    assert TrainingConfig(max_epochs=0).max_epochs == 0
    assert TrainingConfig(cosine_t_max=None).cosine_t_max is None


def test_field_docs_are_the_one_documentation() -> None:
    from calf_forecaster.config import field_docs

    for config in (CALFConfig, TrainingConfig):
        docs = field_docs(config)
        assert set(docs) == {f.name for f in dataclasses.fields(config)}
        assert all(len(text) > 10 for text in docs.values())
        assert all(f"    {name}\n" in config.__doc__ for name in docs)
