"""Bad input never costs a training run or returns a wrong forecast: the table of
``docs/bad-input.md``, one parameter case per row (the ``id`` the document cites).

Every refused row also asserts that nothing trained before the refusal (``fit_calf`` and darts'
``_train`` are recorded by the ``calls`` fixture) and, where the document says so, that the
backbone was not even loaded (``build_network`` recorded). Models are the tiny offline GPT-2 of
:mod:`calf_forecaster.testing`, trained one epoch at most.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import os
import pickle
import signal
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import calf_forecaster.pipeline as pipeline_module
import calf_forecaster.training as training_module
from calf_forecaster.backbone import BackboneNotFoundError, UnsupportedBackboneError
from calf_forecaster.config import CALFConfig, ConfigTypeError, TrainingConfig
from calf_forecaster.model import CALF
from calf_forecaster.persistence import (
    CorruptModelError,
    _load_reference_prototypes,
    load_calf,
    save_calf,
)
from calf_forecaster.pipeline import CALFPipeline
from calf_forecaster.preprocessing import WindowDataset
from calf_forecaster.testing import TINY_SETTINGS, tiny_backbone, tiny_config
from calf_forecaster.training import NonFiniteForecastError, predict_windows, train_calf

L, H = TINY_SETTINGS["seq_len"], TINY_SETTINGS["pred_len"]  # 16, 8
CPU = {"accelerator": "cpu"}


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: tiny models, one thread


class Calls:
    """How often training started (``fit_calf``, darts' ``_train``) and backbones were loaded."""

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def recorded(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return original(*args, **kwargs)
        return recorded

    @property
    def trained(self) -> int:
        return self.counts["fit_calf"] + self.counts["darts_train"]

    @property
    def built(self) -> int:
        return self.counts["build_network"]


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Record every training start and backbone load (the originals still run)."""
    record = Calls()
    fit = training_module.fit_calf
    monkeypatch.setattr(training_module, "fit_calf", record.wrap("fit_calf", fit))
    monkeypatch.setattr(pipeline_module, "fit_calf", record.wrap("fit_calf", fit))
    monkeypatch.setattr(pipeline_module, "build_network",
                        record.wrap("build_network", pipeline_module.build_network))
    try:
        from darts.models.forecasting.torch_forecasting_model import TorchForecastingModel

        import calf_forecaster.darts as darts_module
    except ImportError:
        return record
    monkeypatch.setattr(TorchForecastingModel, "_train",
                        record.wrap("darts_train", TorchForecastingModel._train))
    monkeypatch.setattr(darts_module, "build_network",
                        record.wrap("build_network", darts_module.build_network))
    return record


#: Ctrl+C presses of every ``Interrupt`` callback, copies included (update trains a copy).
INTERRUPTS: collections.Counter[str] = collections.Counter()


class Interrupt:
    """A Lightning callback that presses Ctrl+C at the end of the first epoch once armed."""

    def __new__(cls, armed: bool = True) -> Any:
        from pytorch_lightning.callbacks import Callback

        class _Interrupt(Callback):
            def __init__(self) -> None:
                self.armed = armed

            def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
                if self.armed:
                    INTERRUPTS["fired"] += 1
                    raise KeyboardInterrupt

        return _Interrupt()


@pytest.fixture()
def sigint_restored():
    """Lightning ignores SIGINT after a KeyboardInterrupt (its graceful shutdown): restore it."""
    handler = signal.getsignal(signal.SIGINT)
    yield
    signal.signal(signal.SIGINT, handler)


def sine(length: int, columns: int = 1, scale: float = 1.0, offset: float = 0.0) -> np.ndarray:
    """(T, M) noisy sines, one phase per column."""
    rng = np.random.default_rng(0)
    steps = np.arange(length)[:, None]
    values = np.sin(steps / 3 + np.arange(columns)) + 0.05 * rng.standard_normal((length, columns))
    return values * scale + offset


# =============================================================================== configs

CONFIG_ROWS = [
    # (id, config class, field, bad value, exception)
    ("cfg-seq_len-zero", CALFConfig, "seq_len", 0, ValueError),
    ("cfg-seq_len-float", CALFConfig, "seq_len", 1.5, ConfigTypeError),
    ("cfg-seq_len-bool", CALFConfig, "seq_len", True, ConfigTypeError),
    ("cfg-seq_len-numpy-bool", CALFConfig, "seq_len", np.bool_(True), ConfigTypeError),
    ("cfg-seq_len-string", CALFConfig, "seq_len", "96", ConfigTypeError),
    ("cfg-pred_len-negative", CALFConfig, "pred_len", -1, ValueError),
    ("cfg-n_layers-zero", CALFConfig, "n_layers", 0, ValueError),
    ("cfg-n_prototypes-zero", CALFConfig, "n_prototypes", 0, ValueError),
    ("cfg-lora_r-zero", CALFConfig, "lora_r", 0, ValueError),
    ("cfg-n_heads-zero", CALFConfig, "n_heads", 0, ValueError),
    ("cfg-encoder_ff_dim-zero", CALFConfig, "encoder_ff_dim", 0, ValueError),
    ("cfg-lora_alpha-zero", CALFConfig, "lora_alpha", 0, ValueError),
    ("cfg-lora_dropout-one", CALFConfig, "lora_dropout", 1.0, ValueError),
    ("cfg-lora_dropout-negative", CALFConfig, "lora_dropout", -0.1, ValueError),
    ("cfg-dropout-nan", CALFConfig, "dropout", float("nan"), ValueError),
    ("cfg-dropout-inf", CALFConfig, "dropout", float("inf"), ValueError),
    ("cfg-llm_mode-unknown", CALFConfig, "llm_mode", "gpt", ValueError),
    ("cfg-backbone-empty", CALFConfig, "backbone", "", ValueError),
    ("cfg-backbone-none", CALFConfig, "backbone", None, ValueError),
    ("cfg-pretrained-string", CALFConfig, "pretrained", "yes", ConfigTypeError),
    ("cfg-trust_remote_code-int", CALFConfig, "trust_remote_code", 1, ConfigTypeError),
    ("cfg-revision-int", CALFConfig, "revision", 3, ValueError),
    ("cfg-lora_target_modules-string", CALFConfig, "lora_target_modules", "c_attn", ValueError),
    ("cfg-lora_target_modules-empty", CALFConfig, "lora_target_modules", [], ValueError),
    ("cfg-quantiles-unsorted", CALFConfig, "quantiles", [0.9, 0.5, 0.1], ValueError),
    ("cfg-quantiles-outside", CALFConfig, "quantiles", [0.0, 0.5], ValueError),
    ("cfg-quantiles-no-median", CALFConfig, "quantiles", [0.1, 0.9], ValueError),
    ("cfg-loss-unknown", TrainingConfig, "loss", "huber", ValueError),
    ("cfg-supervised_loss-unknown", TrainingConfig, "supervised_loss", "huber", ValueError),
    ("cfg-output_loss-unknown", TrainingConfig, "output_loss", "huber", ValueError),
    ("cfg-feature_loss-mase", TrainingConfig, "feature_loss", "mase", ValueError),
    ("cfg-supervised_weight-negative", TrainingConfig, "supervised_weight", -1.0, ValueError),
    ("cfg-output_weight-negative", TrainingConfig, "output_weight", -1.0, ValueError),
    ("cfg-feature_weight-inf", TrainingConfig, "feature_weight", float("inf"), ValueError),
    ("cfg-feature_decay-zero", TrainingConfig, "feature_decay", 0.0, ValueError),
    ("cfg-feature_decay-above-one", TrainingConfig, "feature_decay", 1.5, ValueError),
    ("cfg-learning_rate-zero", TrainingConfig, "learning_rate", 0.0, ValueError),
    ("cfg-feature_learning_rate-negative", TrainingConfig, "feature_learning_rate", -1e-4,
     ValueError),
    ("cfg-cosine_t_max-zero", TrainingConfig, "cosine_t_max", 0, ValueError),
    ("cfg-min_learning_rate-negative", TrainingConfig, "min_learning_rate", -1e-8, ValueError),
    ("cfg-optimizer_grouping-unknown", TrainingConfig, "optimizer_grouping", "all", ValueError),
    ("cfg-batch_size-zero", TrainingConfig, "batch_size", 0, ValueError),
    ("cfg-max_epochs-negative", TrainingConfig, "max_epochs", -1, ValueError),
    ("cfg-patience-zero", TrainingConfig, "patience", 0, ValueError),
    ("cfg-validation_loss-unknown", TrainingConfig, "validation_loss", "mase", ValueError),
    ("cfg-validation_size-one", TrainingConfig, "validation_size", 1.0, ValueError),
    ("cfg-validation_size-negative-int", TrainingConfig, "validation_size", -1, ValueError),
    ("cfg-validation_size-string", TrainingConfig, "validation_size", "0.2", ConfigTypeError),
    ("cfg-scale-string", TrainingConfig, "scale", "no", ConfigTypeError),
    ("cfg-seed-negative", TrainingConfig, "seed", -1, ValueError),
    ("cfg-seed-float", TrainingConfig, "seed", 1.5, ConfigTypeError),
]


@pytest.mark.parametrize(("config_class", "field", "value", "error"),
                         [row[1:] for row in CONFIG_ROWS], ids=[row[0] for row in CONFIG_ROWS])
def test_config_field_out_of_range_is_named(config_class, field, value, error) -> None:
    with pytest.raises(error, match=f"`{field}`"):
        config_class(**{field: value})
    assert issubclass(error, ValueError)  # every invalid value is a ValueError


def test_from_dict_refuses_unknown_fields() -> None:  # id: cfg-unknown-field
    with pytest.raises(ValueError, match=r"unknown CALFConfig fields \['seqlen'\]"):
        CALFConfig.from_dict({"seqlen": 96})


#: (config class, field) -> (low, high, low open, high open) of every real field.
REAL_FIELDS = {
    (CALFConfig, "lora_alpha"): (0.0, np.inf, True, False),
    (CALFConfig, "lora_dropout"): (0.0, 1.0, False, True),
    (CALFConfig, "dropout"): (0.0, 1.0, False, True),
    (TrainingConfig, "supervised_weight"): (0.0, np.inf, False, False),
    (TrainingConfig, "output_weight"): (0.0, np.inf, False, False),
    (TrainingConfig, "feature_weight"): (0.0, np.inf, False, False),
    (TrainingConfig, "feature_decay"): (0.0, 1.0, True, False),
    (TrainingConfig, "learning_rate"): (0.0, np.inf, True, False),
    (TrainingConfig, "feature_learning_rate"): (0.0, np.inf, True, False),
    (TrainingConfig, "min_learning_rate"): (0.0, np.inf, False, False),
    (TrainingConfig, "validation_size"): (0.0, 1.0, False, True),
}
#: (config class, field) -> minimum of every integer field.
INTEGER_FIELDS = {
    **{(CALFConfig, name): 1 for name in ("seq_len", "pred_len", "n_layers", "n_prototypes",
                                          "lora_r", "n_heads", "encoder_ff_dim")},
    **{(TrainingConfig, name): 1 for name in ("cosine_t_max", "batch_size", "patience")},
    (TrainingConfig, "max_epochs"): 0,
    (TrainingConfig, "seed"): 0,
    (TrainingConfig, "validation_size"): 0,
}


def _in_range(value: float, low: float, high: float, low_open: bool, high_open: bool) -> bool:
    if not np.isfinite(value):
        return False
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


def test_config_validation_property() -> None:  # id: cfg-property
    """Every out-of-range value raises ValueError naming the field; every in-range numpy or
    Python scalar is stored as the Python type, equal to the value passed."""
    hypothesis = pytest.importorskip("hypothesis")
    st = hypothesis.strategies

    integer_types = st.sampled_from([int, np.int64, np.int32, np.int16])
    real_types = st.sampled_from([float, np.float64, np.float32, int, np.int64])

    @hypothesis.settings(max_examples=300, deadline=None, database=None)
    @hypothesis.given(data=st.data())
    def check(data: Any) -> None:
        if data.draw(st.booleans(), label="integer field"):
            (config_class, field), minimum = data.draw(
                st.sampled_from(sorted(INTEGER_FIELDS.items(), key=str)), label="field")
            raw = data.draw(st.integers(-30_000, 30_000), label="raw")
            value = data.draw(integer_types, label="type")(raw)
            valid = raw >= minimum
            expected_type = int
        else:
            (config_class, field), bounds = data.draw(
                st.sampled_from(sorted(REAL_FIELDS.items(), key=str)), label="field")
            raw = data.draw(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                      st.floats(-2.0, 2.0)), label="raw")
            kind = data.draw(real_types, label="type")
            if kind in (int, np.int64):
                if not np.isfinite(raw) or abs(raw) > 1e15:
                    return
                raw = round(raw)
            with np.errstate(over="ignore"):  # extreme values are the point of the property
                value = kind(raw)
            integer_field = (config_class, field) in INTEGER_FIELDS
            if integer_field and kind in (int, np.int64):
                return  # an int validation_size is a number of steps: the integer table
            valid = _in_range(float(value), *bounds)
            expected_type = float
        if valid:
            config = config_class(**{field: value})
            stored = getattr(config, field)
            assert type(stored) is expected_type and stored == value
        else:
            with pytest.raises(ValueError, match=f"`{field}`"):
                config_class(**{field: value})

    check()


# =============================================================================== core: backbones


@pytest.fixture(scope="module")
def vision_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ViT (no word embeddings) saved with ``save_pretrained``."""
    from transformers import ViTConfig, ViTModel

    directory = tmp_path_factory.mktemp("vit")
    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, image_size=8, patch_size=4)).save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def unknown_family_backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny OPT, an architecture without a BackboneFamily entry."""
    from transformers import OPTConfig, OPTModel

    directory = tmp_path_factory.mktemp("opt")
    OPTModel(OPTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, ffn_dim=64,
                       vocab_size=128, max_position_embeddings=64,
                       word_embed_proj_dim=32)).save_pretrained(directory)
    return directory


BACKBONE_ROWS = [
    # (id, config changes (a callable of the fixtures), exception, match)
    ("core-backbone-missing-path", lambda f: {"backbone": "/nonexistent/calf-backbone"},
     BackboneNotFoundError, "save_pretrained"),
    ("core-backbone-no-embeddings", lambda f: {"backbone": str(f["vision"])},
     UnsupportedBackboneError, "word-embedding matrix"),
    ("core-backbone-unknown-family", lambda f: {"backbone": str(f["unknown"])},
     ValueError, "lora_target_modules"),
    ("core-backbone-n_heads-not-dividing-width", lambda f: {"n_heads": 5},
     ValueError, r"`n_heads`=5 must divide the backbone width D=32"),
    ("core-backbone-n_layers-too-deep", lambda f: {"n_layers": 3},
     ValueError, r"`n_layers`=3 exceeds the 2 blocks"),
    ("core-backbone-n_prototypes-above-width", lambda f: {"n_prototypes": 64},
     ValueError, r"`n_prototypes` must be between 1 and the embedding width D=32"),
]


@pytest.mark.parametrize(("changes", "error", "match"), [row[1:] for row in BACKBONE_ROWS],
                         ids=[row[0] for row in BACKBONE_ROWS])
def test_bad_backbone_is_refused(changes, error, match, vision_backbone,
                                 unknown_family_backbone) -> None:
    config = tiny_config(**changes({"vision": vision_backbone,
                                    "unknown": unknown_family_backbone}))
    with pytest.raises(error, match=match):
        CALF.from_pretrained(config)


def test_uncached_hub_name_offline_fails_fast(monkeypatch) -> None:  # id: core-backbone-offline
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.perf_counter()
    with pytest.raises(BackboneNotFoundError, match=r"\$HF_HUB_OFFLINE is set"):
        CALF.from_pretrained(tiny_config(backbone="calf-forecaster-tests/no-such-model"))
    assert time.perf_counter() - started < 5.0


# =============================================================================== core: predict_windows


@pytest.fixture(scope="module")
def network() -> CALF:
    """The tiny network, untrained (L=16, H=8)."""
    return CALF.from_pretrained(tiny_config())


WINDOW_ROWS = [
    # (id, windows, exception, match)
    ("core-windows-rank-2", np.zeros((L, 2)), ValueError, r"shape \(windows, seq_len"),
    ("core-windows-rank-4", np.zeros((1, 1, L, 2)), ValueError, r"shape \(windows, seq_len"),
    ("core-windows-strings", np.full((1, L, 2), "x"), TypeError, "numeric"),
    ("core-windows-bool", np.zeros((1, L, 2), bool), TypeError, "numeric"),
    ("core-windows-complex", np.zeros((1, L, 2), complex), TypeError, "numeric"),
    ("core-windows-nan", np.full((2, L, 2), np.nan), ValueError, "NaN or infinite"),
    ("core-windows-inf", np.full((2, L, 2), np.inf), ValueError, "NaN or infinite"),
    ("core-windows-wrong-seq_len", np.zeros((2, L - 1, 2)), ValueError,
     r"lookback is 15 steps but the model was built with `seq_len`=16"),
    ("core-windows-no-variates", np.zeros((2, L, 0)), ValueError, "no time steps or no variates"),
    ("core-windows-too-many-variates", np.zeros((1, L, 65)), ValueError,
     "65 variates exceed the backbone's position table of 64"),
]


@pytest.mark.parametrize(("windows", "error", "match"), [row[1:] for row in WINDOW_ROWS],
                         ids=[row[0] for row in WINDOW_ROWS])
def test_bad_windows_are_refused(network, windows, error, match) -> None:
    with pytest.raises(error, match=match):
        predict_windows(network, windows)


def test_no_windows_give_no_forecasts(network) -> None:  # id: core-windows-empty
    assert predict_windows(network, np.zeros((0, L, 3))).shape == (0, H, 3)


def test_float32_extremes_give_finite_forecasts(network) -> None:  # id: core-windows-1e30
    """Statistics in float64: windows around 1e30 (float32's range) are forecast at their scale."""
    windows = sine(L, 2, scale=1e29, offset=1e30)[None]
    forecast = predict_windows(network, windows)
    assert np.isfinite(forecast).all()
    assert 1e29 < np.abs(forecast).mean() < 1e31


def test_non_finite_weights_raise_instead_of_returning_nan() -> None:  # id: core-nan-weights
    model = CALF.from_pretrained(tiny_config())
    with torch.no_grad():
        model.head.weight.fill_(float("nan"))
    with pytest.raises(NonFiniteForecastError, match="NaN or infinite forecast values"):
        predict_windows(model, sine(L, 2)[None])


# =============================================================================== core: pipeline


@pytest.fixture(scope="module")
def pipeline() -> CALFPipeline:
    """An unfitted pipeline around the tiny network (one epoch, no validation split)."""
    return CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=1, validation_size=0,
                                                            seed=0), CPU)


PIPELINE_ROWS = [
    # (id, series, fit keyword arguments, exception, match)
    ("pipe-fit-no-series", [], {}, ValueError, "no series given"),
    ("pipe-fit-empty-series", [np.zeros((0, 2))], {}, ValueError, "is empty"),
    ("pipe-fit-rank-3", [np.zeros((40, 2, 2))], {}, ValueError, "must have rank 1"),
    ("pipe-fit-strings", [np.full((40, 2), "1.0")], {}, TypeError, "numeric"),
    ("pipe-fit-datetimes", [np.arange(40).astype("datetime64[D]")], {}, TypeError, "numeric"),
    ("pipe-fit-object-mixed", [np.array([1.0, "a"] * 20, dtype=object)], {}, TypeError,
     "numeric"),
    ("pipe-fit-nan", [np.where(np.arange(40)[:, None] == 3, np.nan, sine(40))], {}, ValueError,
     r"1 NaN or infinite values \(first at row 3"),
    ("pipe-fit-inf", [np.where(np.arange(40)[:, None] == 5, -np.inf, sine(40))], {}, ValueError,
     "NaN or infinite"),
    ("pipe-fit-column-count-differs", [sine(40, 2), sine(40, 3)], {}, ValueError,
     "same number of columns"),
    ("pipe-fit-too-short", [sine(40), sine(L + H - 1)], {}, ValueError,
     r"1 of 2 series are too short: 24 time points .* series\[1\] has 23"),
    ("pipe-fit-validation-too-short", [sine(40)], {"validation": [sine(L)]}, ValueError,
     r"validation\[0\] has 16"),
    ("pipe-fit-too-many-variates", [sine(40, 65)], {}, ValueError,
     "65 variates .* exceed the position table"),
]


@pytest.mark.parametrize(("series", "kwargs", "error", "match"),
                         [row[1:] for row in PIPELINE_ROWS], ids=[row[0] for row in PIPELINE_ROWS])
def test_bad_series_are_refused_before_training(pipeline, calls, series, kwargs, error,
                                                match) -> None:
    with pytest.raises(error, match=match):
        pipeline.fit(series, **kwargs)
    assert calls.trained == 0


@pytest.fixture(scope="module")
def fitted_pipeline() -> CALFPipeline:
    """A pipeline fitted (one epoch) on one bivariate series, with column scaling."""
    pipeline = CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=1, validation_size=0,
                                                                seed=0), CPU)
    pipeline.fit([sine(60, 2)])
    return pipeline


FORECAST_ROWS = [
    ("pipe-forecast-other-column-count", sine(L, 3)[None], ValueError,
     "has 3 columns, but the pipeline was fitted on 2"),
    ("pipe-forecast-strings", np.full((1, L, 2), "x"), TypeError, "numeric"),
    ("pipe-forecast-nan", np.full((1, L, 2), np.nan), ValueError, "NaN or infinite"),
    ("pipe-forecast-rank-2", sine(L, 2), ValueError, "shape"),
]


@pytest.mark.parametrize(("context", "error", "match"), [row[1:] for row in FORECAST_ROWS],
                         ids=[row[0] for row in FORECAST_ROWS])
def test_bad_context_is_refused(fitted_pipeline, context, error, match) -> None:
    with pytest.raises(error, match=match):
        fitted_pipeline.forecast(context)


def test_values_near_float64s_range_are_scaled_and_forecast_finitely() -> None:
    """id: pipe-1e300-scaled. ChannelScaler's statistics on values divided by the column peak."""
    series = sine(60, 2, scale=1e299, offset=1e300)
    pipeline = CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=0, seed=0))
    pipeline.fit([series])
    forecast = pipeline.forecast(series[None, -L:])
    assert np.isfinite(forecast).all() and 1e299 < np.abs(forecast).mean() < 1e301


def test_unscaled_tiny_spread_warns_and_normal_data_does_not(pipeline, calls) -> None:
    """id: pipe-tiny-spread-warns. The per-window normalisation floors the variance at 1e-5."""
    unscaled = CALFPipeline(pipeline.network, TrainingConfig(max_epochs=0, scale=False))
    with pytest.warns(UserWarning, match="normalisation floor"):
        unscaled.fit([sine(40, 2, scale=1e-5)])
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        unscaled.fit([sine(40, 2)])


# =============================================================================== core: saved models


@pytest.fixture()
def saved(network: CALF, tmp_path: Path) -> Path:
    return save_calf(network, tmp_path / "model")


def test_missing_model_is_named(tmp_path) -> None:  # id: load-missing
    with pytest.raises(FileNotFoundError, match="no saved CALF model"):
        load_calf(tmp_path / "nothing")


@pytest.mark.parametrize(("damage", "error", "match"), [
    (lambda d: (d / "calf.json").write_bytes(b"\x00garbage{"), CorruptModelError,
     "calf.json of .* is corrupted"),
    (lambda d: (d / "calf.json").write_text("[1, 2]"), CorruptModelError,
     "not a CALF model description"),
    (lambda d: (d / "calf.json").write_text(json.dumps({"format": "calf-forecaster",
                                                        "format_version": 2})),
     CorruptModelError, "incomplete"),
    (lambda d: (d / "calf.json").write_text(json.dumps({"format": "other", "format_version": 1})),
     ValueError, "not a CALF model of a format this version reads"),
    (lambda d: (d / "weights.safetensors").write_bytes(
        (d / "weights.safetensors").read_bytes()[:len((d / "weights.safetensors").read_bytes())
                                                 // 2]),
     CorruptModelError, "missing, truncated or does not belong"),
    (lambda d: (d / "weights.safetensors").unlink(), CorruptModelError,
     "missing, truncated or does not belong"),
], ids=["load-json-garbage", "load-json-not-an-object", "load-json-incomplete",
        "load-other-format", "load-weights-truncated", "load-weights-missing"])
def test_damaged_model_is_refused(saved, damage, error, match) -> None:
    damage(saved)
    with pytest.raises(error, match=match):
        load_calf(saved)


def test_weights_of_another_model_are_refused(saved, tmp_path) -> None:
    """id: load-weights-of-another-model."""
    other = CALF.from_pretrained(tiny_config(pred_len=4))
    elsewhere = save_calf(other, tmp_path / "other")
    (saved / "weights.safetensors").write_bytes((elsewhere / "weights.safetensors").read_bytes())
    with pytest.raises(CorruptModelError, match="does not belong to its calf.json"):
        load_calf(saved)


@pytest.mark.parametrize("overwrite", [False, True], ids=["save-crash-new", "save-crash-overwrite"])
def test_save_interrupted_between_the_files_leaves_no_loadable_model(network, tmp_path,
                                                                     monkeypatch, overwrite) -> None:
    directory = tmp_path / "model"
    if overwrite:
        save_calf(network, directory)
    real_replace, count = os.replace, {"n": 0}

    def crash_on_second(source: Any, target: Any) -> None:
        count["n"] += 1
        if count["n"] == 2:  # weights in place, calf.json not yet
            raise OSError("disk full")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", crash_on_second)
    with pytest.raises(OSError, match="disk full"):
        save_calf(network, directory)
    monkeypatch.undo()
    assert (directory / "weights.safetensors").is_file()
    with pytest.raises(FileNotFoundError, match="interrupted"):
        load_calf(directory)


@pytest.fixture(scope="module")
def lightning_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real Lightning checkpoint of one epoch of the tiny network."""
    from pytorch_lightning.callbacks import ModelCheckpoint

    directory = tmp_path_factory.mktemp("checkpoints")
    model = CALF.from_pretrained(tiny_config())
    data = WindowDataset([sine(40, 2)], L, H)
    train_calf(model, data, None, TrainingConfig(max_epochs=1, seed=0),
               {**CPU, "callbacks": [ModelCheckpoint(dirpath=directory, save_last=True)]})
    return directory / "last.ckpt"


@pytest.mark.parametrize("damage", ["garbage", "truncated"],
                         ids=["ckpt-garbage", "ckpt-truncated"])
def test_corrupted_lightning_checkpoint_is_refused_before_training(lightning_checkpoint, tmp_path,
                                                                   calls, damage) -> None:
    data = lightning_checkpoint.read_bytes()
    broken = tmp_path / "broken.ckpt"
    broken.write_bytes(b"not a checkpoint" * 64 if damage == "garbage" else data[:len(data) // 2])
    model = CALF.from_pretrained(tiny_config())
    with pytest.raises(CorruptModelError, match="truncated or not a checkpoint"):
        train_calf(model, WindowDataset([sine(40, 2)], L, H), None,
                   TrainingConfig(max_epochs=2, seed=0), CPU, ckpt_path=str(broken))


# =============================================================================== core: prototypes


def _rewrite_pickle(buffer: bytes, old: bytes, new: bytes) -> bytes:
    """A torch zip file with ``old`` replaced by ``new`` in its ``data.pkl`` (uncompressed)."""
    source, target = zipfile.ZipFile(io.BytesIO(buffer)), io.BytesIO()
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as rebuilt:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename.endswith("/data.pkl"):
                assert old in content
                content = content.replace(old, new)
            rebuilt.writestr(info.filename, content)
    return target.getvalue()


def test_numpy1_prototype_file_loads_safely(tmp_path) -> None:  # id: proto-numpy1-pickle
    """The authors' prototypes were pickled by numpy 1.x (``numpy.core.multiarray``)."""
    array = np.arange(12, dtype=np.float32).reshape(4, 3)  # (D, P)
    buffer = io.BytesIO()
    torch.save(array, buffer)
    assert b"numpy._core" in buffer.getvalue() or b"numpy.core" in buffer.getvalue()
    path = tmp_path / "wte_pca_500.pt"
    path.write_bytes(_rewrite_pickle(buffer.getvalue(), b"numpy._core", b"numpy.core"))
    loaded = _load_reference_prototypes(path)
    assert loaded.shape == (3, 4)
    np.testing.assert_array_equal(loaded.numpy(), array.T)


class _Exploit:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {self.marker}",)


def test_prototype_file_with_an_arbitrary_global_is_refused(tmp_path) -> None:
    """id: proto-arbitrary-global. Only numpy array reconstruction may run."""
    marker = tmp_path / "executed"
    path = tmp_path / "evil.pt"
    torch.save(_Exploit(marker), path)
    with pytest.raises(pickle.UnpicklingError):
        _load_reference_prototypes(path)
    assert not marker.exists()


# =============================================================================== sktime


def sktime_forecaster(**changes: Any) -> Any:
    """The first sktime test parameter set, one epoch, no validation split, seq_len 8."""
    pytest.importorskip("sktime")
    from calf_forecaster.sktime import CALFForecaster

    params = {**CALFForecaster.get_test_params()[0], "validation_size": 0, "max_epochs": 1,
              "seq_len": 8}
    params.update(changes)
    return CALFForecaster(**params)


HOURS = pd.date_range("2021-01-01", periods=48, freq="h")


def hourly(length: int = 48, columns: int = 1, name: str = "y", scale: float = 1.0,
           offset: float = 0.0) -> pd.Series | pd.DataFrame:
    values = sine(length, columns, scale, offset)
    index = pd.date_range("2021-01-01", periods=length, freq="h")
    if columns == 1:
        return pd.Series(values[:, 0], index=index, name=name)
    return pd.DataFrame(values, index=index, columns=[f"{name}{k}" for k in range(columns)])


def _with(series: pd.Series, position: int, value: Any) -> pd.Series:
    changed = series.copy()
    changed.iloc[position] = value
    return changed


def _panel(**frames: pd.Series) -> pd.DataFrame:
    return pd.concat({k: v.to_frame("y") for k, v in frames.items()}, names=["series", "time"])


SK_FIT_ROWS = [
    # (id, y factory, fh, forecaster changes, exception, match, backbone loaded before refusal)
    ("sk-fit-nan", lambda: _with(hourly(), 10, np.nan), [1], {}, ValueError,
     "cannot handle missing data", False),
    ("sk-fit-inf", lambda: _with(hourly(), 10, np.inf), [1], {}, ValueError, "NaN or infinite",
     False),
    ("sk-fit-string-column", lambda: hourly().astype(str), [1], {}, TypeError, "categorical",
     False),
    ("sk-fit-mixed-object-column",
     lambda: pd.DataFrame({"a": [1.0, "x"] * 24}, index=HOURS, dtype=object), [1], {},
     TypeError, "categorical", False),
    ("sk-fit-bool-column", lambda: hourly() > 0, [1], {}, TypeError, "numeric", False),
    ("sk-fit-empty", lambda: hourly().iloc[:0], [1], {}, ValueError, "is empty", False),
    ("sk-fit-too-short", lambda: hourly(8), [1, 2], {}, ValueError,
     "the series is too short: 10 time points are needed .* y has 8 .* does not pad", False),
    ("sk-fit-panel-too-short", lambda: _panel(a=hourly(), b=hourly(5), c=hourly(7)), [1], {},
     ValueError, r"2 of 3 series are too short.*series 'b'\) has 5.*series 'c'\) has 7", False),
    ("sk-fit-numpy3d-too-short", lambda: np.zeros((3, 2, 4)), [1], {}, ValueError,
     "3 of 3 series are too short", False),
    ("sk-fit-datetime-irregular", lambda: hourly().drop(HOURS[[5, 9]]), [1], {}, ValueError,
     r"not regular .*y\.asfreq", False),
    ("sk-fit-datetime-duplicated", lambda: pd.Series(sine(48)[:, 0], HOURS[[0, *range(47)]],
                                                     name="y"),
     [1], {}, ValueError, "not unique", False),
    ("sk-fit-datetime-unsorted", lambda: hourly().iloc[::-1], [1], {}, TypeError,
     "sorted monotonically increasing", False),
    ("sk-fit-period-gap", lambda: pd.Series(
        sine(40)[:, 0], pd.period_range("2000-01", periods=41, freq="M").delete(20), name="y"),
     [1], {}, ValueError, "not regular .*period_range", False),
    ("sk-fit-integer-gap", lambda: pd.Series(sine(40)[:, 0], np.arange(40) * 2, name="y"), [1],
     {}, ValueError, r"not regular .*range\(first, last \+ 1\)", False),
    ("sk-fit-string-index", lambda: pd.Series(sine(40)[:, 0], [str(i) for i in range(40)]),
     [1], {}, TypeError, "sktime compatible format", False),
    ("sk-fit-fh-zero", lambda: hourly(), [0], {}, NotImplementedError, "in-sample", False),
    ("sk-fit-fh-negative", lambda: hourly(), [-2, 1], {}, NotImplementedError, "in-sample",
     False),
    ("sk-fit-fh-empty", lambda: hourly(), [], {}, ValueError, "must not be empty", False),
    ("sk-fit-fh-missing", lambda: hourly(), None, {}, ValueError, "must be passed to `fit`",
     False),
    ("sk-fit-seq_len-zero", lambda: hourly(), [1], {"seq_len": 0}, ValueError, "`seq_len`",
     False),
    ("sk-fit-learning_rate-negative", lambda: hourly(), [1], {"learning_rate": -1.0},
     ValueError, "`learning_rate`", False),
    ("sk-fit-random_state-string", lambda: hourly(), [1], {"random_state": "seed"}, TypeError,
     "`random_state`", False),
    ("sk-fit-n_heads-not-dividing-width", lambda: hourly(), [1], {"n_heads": 5}, ValueError,
     "`n_heads`=5 must divide", True),
    ("sk-fit-too-many-columns", lambda: hourly(40, 65), [1], {}, ValueError,
     "65 variates .* exceed the position table", True),
]


@pytest.mark.parametrize(("make_y", "fh", "changes", "error", "match", "loads"),
                         [row[1:] for row in SK_FIT_ROWS], ids=[row[0] for row in SK_FIT_ROWS])
def test_sktime_fit_refuses_before_training(calls, make_y, fh, changes, error, match,
                                            loads) -> None:
    forecaster = sktime_forecaster(**changes)
    with pytest.raises(error, match=match):
        forecaster.fit(make_y(), fh=fh)
    assert calls.trained == 0
    assert calls.built == (1 if loads else 0)  # most refusals come before the backbone loads
    assert not forecaster.is_fitted


def _naive_index(y: Any, fh: list[int]) -> pd.Index | None:
    """The forecast index of sktime's NaiveForecaster (``None`` for an ndarray, which has none)."""
    from sktime.forecasting.naive import NaiveForecaster

    class QuietNaive(NaiveForecaster):
        """NaiveForecaster without sktime 1.2's remember_data notice, which it gives at every
        construction (also of the clones of a panel fit) and re-enables past pytest's filter."""

        _config = {"remember_data": False}

    forecast = QuietNaive().fit(y, fh=fh).predict()
    return getattr(forecast, "index", None)


SK_INDEX_ROWS = [
    # (id, y factory): accepted; forecasts continue the index as sktime's NaiveForecaster does
    ("sk-index-range", lambda: pd.Series(sine(40)[:, 0])),
    ("sk-index-integer", lambda: pd.Series(sine(40)[:, 0], index=np.arange(100, 140))),
    ("sk-index-period", lambda: pd.Series(sine(40)[:, 0],
                                          pd.period_range("2000-01", periods=40, freq="M"))),
    ("sk-index-datetime", lambda: hourly()),
    ("sk-index-datetime-no-freq", lambda: pd.Series(sine(48)[:, 0], pd.DatetimeIndex(list(HOURS)))),
    ("sk-index-ndarray", lambda: sine(40, 2)),
    ("sk-index-panel-overlapping-dates", lambda: _panel(a=hourly(40), b=hourly(48).iloc[5:],
                                                        c=hourly(30).iloc[3:])),
]


@pytest.mark.parametrize("make_y", [row[1] for row in SK_INDEX_ROWS],
                         ids=[row[0] for row in SK_INDEX_ROWS])
def test_sktime_index_kinds_are_continued_like_naive_forecaster(make_y) -> None:
    y = make_y()
    forecast = sktime_forecaster(max_epochs=0).fit(y, fh=[1, 2, 3]).predict()
    expected = _naive_index(y, [1, 2, 3])
    assert np.isfinite(np.asarray(forecast, float)).all()
    if isinstance(forecast, np.ndarray):
        assert forecast.shape == (3, 2)
    else:
        assert forecast.index.equals(expected)


def test_sktime_overlapping_etth1_chunks_continue_each_series(ett_h1) -> None:
    """id: sk-panel-etth1-overlapping. A panel time level with freq=None used to crash predict."""
    ett = ett_h1.iloc[:400].asfreq("h")
    chunks = {"a": ett.iloc[:200], "b": ett.iloc[50:260], "c": ett.iloc[100:300]}
    panel = pd.concat(chunks, names=["chunk", "date"])
    fh = [1, 2, 3, 4]
    forecast = sktime_forecaster(seq_len=24).fit(panel, fh=fh).predict()
    assert forecast.index.equals(_naive_index(panel, fh))
    for name, chunk in chunks.items():
        times = forecast.loc[name].index
        assert list(times) == list(pd.date_range(chunk.index[-1], periods=5, freq="h")[1:])
    assert np.isfinite(forecast.to_numpy()).all()


def test_sktime_numpy_hyperparameters_and_grid_over_numpy_seq_len() -> None:
    """id: sk-numpy-hyperparameters. numpy scalars, e.g. from np.arange in a grid."""
    from sktime.forecasting.model_selection import ForecastingGridSearchCV
    from sktime.split import ExpandingWindowSplitter

    y = hourly()
    forecaster = sktime_forecaster(seq_len=np.int64(8), learning_rate=np.float64(1e-3),
                                   batch_size=np.int64(32), max_epochs=np.int64(1),
                                   random_state=np.int64(0), lora_dropout=np.float32(0.1))
    assert forecaster.fit(y, fh=[1, 2]).predict().index.equals(_naive_index(y, [1, 2]))
    assert type(forecaster.pipeline_.config.seq_len) is int
    with warnings.catch_warnings():
        # sktime's remember_data notice for the grid search itself (and its clones), which
        # sktime re-enables past pytest's filter; CALFForecaster no longer triggers it
        warnings.simplefilter("ignore", FutureWarning)
        search = ForecastingGridSearchCV(
            sktime_forecaster(max_epochs=1),
            cv=ExpandingWindowSplitter(fh=[1, 2], initial_window=36, step_length=6),
            param_grid={"seq_len": np.arange(8, 13, 4)})
        search.fit(y, fh=[1, 2])
        assert len(search.cv_results_) == 2 and np.isfinite(search.predict().to_numpy()).all()


def test_sktime_extreme_and_tiny_magnitudes() -> None:
    """ids: sk-1e30-unscaled, sk-1e300-scaled, sk-tiny-spread-unscaled-warns,
    sk-tiny-spread-scaled."""
    big = hourly(scale=1e29, offset=1e30)
    forecast = sktime_forecaster(scale=False).fit(big, fh=[1, 2]).predict()
    assert np.isfinite(forecast).all() and (5e29 < forecast.abs()).all() \
        and (forecast.abs() < 5e30).all()

    huge = hourly(scale=1e299, offset=1e300)
    forecast = sktime_forecaster(scale=True).fit(huge, fh=[1, 2]).predict()
    assert np.isfinite(forecast).all() and (forecast.abs() > 1e299).all()

    tiny_spread = hourly(scale=1e-6, offset=3e-6)
    with pytest.warns(UserWarning, match="far below the network's normalisation floor"):
        sktime_forecaster(scale=False).fit(tiny_spread, fh=[1, 2])
    forecast = sktime_forecaster(scale=True).fit(tiny_spread, fh=[1, 2]).predict()
    assert (np.abs(forecast - tiny_spread.mean()) < 20 * tiny_spread.std()).all()


def test_sktime_exogenous_x_is_checked() -> None:
    """ids: sk-x-other-columns, sk-x-too-short, sk-x-not-in-fit (X is used: tests/test_exogenous.py)."""
    y = hourly()
    X = pd.DataFrame({"x": np.arange(50.0)}, index=hourly(50).index)
    forecaster = sktime_forecaster(max_epochs=0).fit(y, X=X.iloc[:48], fh=[1, 2])
    with pytest.raises(ValueError, match=r"X passed to predict has columns \['z'\], but "
                                         r"CALFForecaster was fitted with X columns \['x'\]"):
        forecaster.predict(X=X.rename(columns={"x": "z"}).iloc[48:])
    with pytest.raises(ValueError, match="not contained in index"):  # sktime's own check
        sktime_forecaster(max_epochs=0).fit(y, X=X.iloc[40:], fh=[1, 2])
    forecaster.update(hourly(50).iloc[48:], update_params=False)  # no X for the new hours
    with pytest.raises(ValueError, match=r"X lacks 2 of the 8 time points of y needed to "
                                         r"forecast"):
        forecaster.predict()
    with pytest.raises(ValueError, match="X passed to predict, but CALFForecaster was fitted "
                                         "without X"):
        sktime_forecaster(max_epochs=0).fit(y, fh=[1, 2]).predict(X=X.iloc[48:])


@pytest.fixture(scope="module")
def fitted_forecaster() -> Any:
    """Fitted (one epoch) on the first 40 hours of ``hourly()``, horizon 2."""
    return sktime_forecaster().fit(hourly().iloc[:40], fh=[1, 2])


def _state(forecaster: Any) -> dict[str, Any]:
    return {"cutoff": forecaster.cutoff, "history": forecaster._cur_y.copy(),
            "pipeline": forecaster.pipeline_, "windows": forecaster.n_train_windows_,
            "weights": {k: v.clone() for k, v in forecaster.network_.state_dict().items()},
            "forecast": forecaster.predict()}


def _assert_unchanged(forecaster: Any, before: dict[str, Any]) -> None:
    assert forecaster.cutoff.equals(before["cutoff"])
    pd.testing.assert_frame_equal(forecaster._cur_y, before["history"])
    assert forecaster.pipeline_ is before["pipeline"]
    assert forecaster.n_train_windows_ == before["windows"]
    after = forecaster.network_.state_dict()
    assert all(torch.equal(after[k], v) for k, v in before["weights"].items())
    pd.testing.assert_series_equal(forecaster.predict(), before["forecast"])


NEXT = hourly().iloc[40:44]  # the four hours after the fitted history
SK_UPDATE_ROWS = [
    # (id, update factory, exception, match)
    ("sk-update-renamed", lambda: NEXT.rename("z"), ValueError, r"columns \['z'\].*fitted on"),
    ("sk-update-unnamed", lambda: NEXT.rename(None), ValueError, "fitted on columns"),
    ("sk-update-ndarray", lambda: NEXT.to_numpy(), ValueError, "fitted on columns"),
    ("sk-update-other-columns", lambda: pd.DataFrame({"y": NEXT, "w": NEXT}), ValueError,
     "fitted on columns"),
    ("sk-update-nan", lambda: _with(NEXT, 1, np.nan), ValueError, "NaN or infinite"),
    ("sk-update-inf", lambda: _with(NEXT, 1, np.inf), ValueError, "NaN or infinite"),
    ("sk-update-strings", lambda: NEXT.astype(str), TypeError, "must be numeric"),
    ("sk-update-gap", lambda: NEXT.iloc[2:], ValueError, "leaving a gap"),
    ("sk-update-back-in-time", lambda: hourly().iloc[30:35], ValueError,
     "before the end of its history"),
    ("sk-update-duplicated", lambda: pd.Series([0.1, 0.2], HOURS[[40, 40]], name="y"),
     ValueError, "not unique"),
    ("sk-update-unsorted", lambda: NEXT.iloc[::-1], TypeError, "sorted monotonically"),
]


@pytest.mark.parametrize("update_params", [False, True], ids=["move", "train"])
@pytest.mark.parametrize(("make_y", "error", "match"), [row[1:] for row in SK_UPDATE_ROWS],
                         ids=[row[0] for row in SK_UPDATE_ROWS])
def test_sktime_refused_update_changes_nothing(fitted_forecaster, calls, make_y, error, match,
                                               update_params) -> None:
    before = _state(fitted_forecaster)
    with pytest.raises(error, match=match):
        fitted_forecaster.update(make_y(), update_params=update_params)
    assert calls.trained == 0
    _assert_unchanged(fitted_forecaster, before)


def test_sktime_one_point_update_without_freq_is_accepted(fitted_forecaster) -> None:
    """id: sk-update-one-point-no-freq. Regularity is judged with the history."""
    forecaster = fitted_forecaster.clone().fit(hourly().iloc[:40], fh=[1, 2])
    one = pd.Series([0.5], index=pd.DatetimeIndex([HOURS[40]]), name="y")
    forecaster.update(one, update_params=False)
    assert forecaster.predict().index.equals(pd.DatetimeIndex(HOURS[41:43], freq="h"))


def test_sktime_update_failing_inside_training_changes_nothing(fitted_forecaster,
                                                               monkeypatch) -> None:
    """id: sk-update-training-raises."""
    before = _state(fitted_forecaster)
    started = []

    def failing(*args: Any, **kwargs: Any) -> None:
        started.append(True)
        raise RuntimeError("out of memory")

    monkeypatch.setattr(pipeline_module, "fit_calf", failing)
    with pytest.raises(RuntimeError, match="out of memory"):
        fitted_forecaster.update(NEXT, update_params=True)
    assert started  # the failure came from inside training
    monkeypatch.undo()
    _assert_unchanged(fitted_forecaster, before)


def test_sktime_update_interrupted_by_ctrl_c_changes_nothing(sigint_restored) -> None:
    """id: sk-update-interrupted."""
    callback = Interrupt(armed=False)
    forecaster = sktime_forecaster(trainer_kwargs={"callbacks": [callback]})
    forecaster.fit(hourly().iloc[:40], fh=[1, 2])
    before = _state(forecaster)
    callback.armed, fired = True, INTERRUPTS["fired"]
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        forecaster.update(NEXT, update_params=True)
    assert INTERRUPTS["fired"] == fired + 1  # pressed inside training
    callback.armed = False
    _assert_unchanged(forecaster, before)


def test_sktime_fit_interrupted_by_ctrl_c_leaves_it_unfitted(sigint_restored) -> None:
    """id: sk-fit-interrupted. Also a refit of a fitted forecaster: sktime resets it first."""
    from sktime.exceptions import NotFittedError

    callback = Interrupt(armed=True)
    forecaster = sktime_forecaster(trainer_kwargs={"callbacks": [callback]})
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        forecaster.fit(hourly(), fh=[1, 2])
    assert not forecaster.is_fitted
    with pytest.raises(NotFittedError):
        forecaster.predict()
    callback.armed = False
    forecaster.fit(hourly(), fh=[1, 2])
    callback.armed = True
    with pytest.raises((KeyboardInterrupt, SystemExit)):
        forecaster.fit(hourly(), fh=[1, 2])
    assert not forecaster.is_fitted and not hasattr(forecaster, "pipeline_")


# =============================================================================== darts


DARTS_CPU = {"accelerator": "cpu", "enable_progress_bar": False, "enable_model_summary": False,
             "logger": False}


def darts_kwargs(**overrides: Any) -> dict[str, Any]:
    """Tiny, seeded, one-epoch CALFModel settings on the CPU (test_darts.py's ``tiny_kwargs``)."""
    kwargs: dict[str, Any] = {
        "input_chunk_length": 12, "output_chunk_length": 6, "backbone": tiny_backbone(),
        "n_layers": 2, "n_prototypes": 8, "n_heads": 4, "encoder_ff_dim": 32, "batch_size": 64,
        "n_epochs": 1, "random_state": 0, "pl_trainer_kwargs": dict(DARTS_CPU),
    }
    kwargs.update(overrides)
    return kwargs


def darts_series(length: int = 72, columns: int = 1, prefix: str = "c", scale: float = 1.0,
                 offset: float = 0.0, dtype: Any = np.float32, at: int | None = None,
                 value: float = 0.0) -> Any:
    pytest.importorskip("darts")
    from darts import TimeSeries

    values = sine(length, columns, scale, offset)
    if at is not None:
        values[at, 0] = value
    return TimeSeries.from_times_and_values(
        pd.date_range("2021-01-01", periods=length, freq="h"), values.astype(dtype),
        columns=[f"{prefix}{k}" for k in range(columns)])


def darts_model(**overrides: Any) -> Any:
    pytest.importorskip("darts")
    from calf_forecaster.darts import CALFModel

    return CALFModel(**darts_kwargs(**overrides))


def _static(series: Any) -> Any:
    return series.with_static_covariates(pd.DataFrame({"site": [3.0]}))


DARTS_FIT_ROWS = [
    # (id, fit arguments factory, exception, match)
    ("darts-fit-nan-series", lambda: ((darts_series(at=5, value=np.nan),), {}), ValueError,
     r"`series` holds 1 NaN or infinite values \(first at 2021-01-01 05:00:00, component 'c0'"),
    ("darts-fit-inf-series", lambda: ((darts_series(at=5, value=np.inf),), {}), ValueError,
     "`series` holds 1 NaN or infinite"),
    ("darts-fit-nan-in-a-list", lambda: (([darts_series(), darts_series(at=3, value=np.nan)],),
                                         {}), ValueError, r"`series\[1\]` holds 1 NaN"),
    ("darts-fit-nan-past-covariates", lambda: ((darts_series(),), {
        "past_covariates": darts_series(prefix="x", at=2, value=np.nan)}), ValueError,
     "`past_covariates` holds 1 NaN"),
    ("darts-fit-nan-past-covariates-positional", lambda: (
        (darts_series(), darts_series(prefix="x", at=2, value=np.nan)), {}), ValueError,
     "`past_covariates` holds 1 NaN"),
    ("darts-fit-nan-val-series", lambda: ((darts_series(),), {
        "val_series": darts_series(at=7, value=np.nan)}), ValueError, "`val_series` holds 1 NaN"),
    ("darts-fit-nan-val-past-covariates", lambda: ((darts_series(),), {
        "past_covariates": darts_series(prefix="x"), "val_series": darts_series(),
        "val_past_covariates": darts_series(prefix="x", at=7, value=np.inf)}), ValueError,
     "`val_past_covariates` holds 1 NaN"),
    ("darts-fit-static-covariates", lambda: ((_static(darts_series()),), {}), ValueError,
     "carries static covariates"),
    ("darts-fit-static-val-series", lambda: ((darts_series(),), {
        "val_series": _static(darts_series())}), ValueError, "`val_series` carries static"),
    ("darts-fit-dataframe", lambda: ((darts_series().to_dataframe(),), {}), ValueError,
     "`series` is a pandas.DataFrame, but input series must be of type `TimeSeries`"),
    ("darts-fit-pandas-series", lambda: ((darts_series().to_dataframe()["c0"],), {}), ValueError,
     "`series` is a pandas.Series, but input series must be of type `TimeSeries`"),
    ("darts-fit-ndarray", lambda: ((sine(72),), {}), ValueError,
     "`series` is a numpy.ndarray, but input series must be of type `TimeSeries`"),
    ("darts-fit-dataframe-past-covariates", lambda: ((darts_series(),), {
        "past_covariates": darts_series(prefix="x").to_dataframe()}), ValueError,
     "`past_covariates` is a pandas.DataFrame"),
    ("darts-fit-future-covariates", lambda: ((darts_series(),), {
        "future_covariates": darts_series(prefix="f")}), ValueError,
     "does not support `future_covariates`"),
    ("darts-fit-too-short", lambda: ((darts_series(12),), {}), ValueError,
     "too short to extract even a single sample"),
]


@pytest.mark.parametrize(("make_arguments", "error", "match"), [row[1:] for row in DARTS_FIT_ROWS],
                         ids=[row[0] for row in DARTS_FIT_ROWS])
def test_darts_fit_refuses_before_training(calls, make_arguments, error, match) -> None:
    args, kwargs = make_arguments()
    model = darts_model()
    with pytest.raises(error, match=match):
        model.fit(*args, **kwargs)
    assert calls.trained == 0 and calls.built == 0


@pytest.fixture(scope="module")
def fitted_darts() -> Any:
    model = darts_model()
    model.fit(darts_series())
    return model


DARTS_PREDICT_ROWS = [
    ("darts-predict-nan-series", lambda: {"series": darts_series(at=70, value=np.nan)},
     ValueError, "`series` holds 1 NaN"),
    ("darts-predict-nan-past-covariates", lambda: {
        "series": darts_series(), "past_covariates": darts_series(prefix="x", at=1,
                                                                  value=np.nan)},
     ValueError, "`past_covariates` holds 1 NaN"),
    ("darts-predict-static-covariates", lambda: {"series": _static(darts_series())}, ValueError,
     "carries static covariates"),
    ("darts-predict-dataframe", lambda: {"series": darts_series().to_dataframe()}, ValueError,
     "`series` is a pandas.DataFrame"),
    ("darts-predict-n-zero", lambda: {"n": 0}, ValueError, "`n` must be a positive integer"),
    ("darts-predict-n-negative", lambda: {"n": -1}, ValueError, "`n` must be a positive integer"),
    ("darts-predict-n-float", lambda: {"n": 2.5}, ValueError, "`n` must be a positive integer"),
]


@pytest.mark.parametrize(("make_arguments", "error", "match"),
                         [row[1:] for row in DARTS_PREDICT_ROWS],
                         ids=[row[0] for row in DARTS_PREDICT_ROWS])
def test_darts_predict_refuses_bad_context(fitted_darts, make_arguments, error, match) -> None:
    arguments = {"n": 6, **make_arguments()}
    with pytest.raises(error, match=match):
        fitted_darts.predict(**arguments)


@pytest.mark.parametrize(("overrides", "field"), [
    ({"input_chunk_length": 0}, "input_chunk_length"),
    ({"output_chunk_length": 0}, "output_chunk_length"),
    ({"input_chunk_length": 12.0}, "input_chunk_length"),
    ({"lora_dropout": 1.0}, "lora_dropout"),
    ({"feature_decay": 0.0}, "feature_decay"),
], ids=["darts-init-input_chunk_length-zero", "darts-init-output_chunk_length-zero",
        "darts-init-input_chunk_length-float", "darts-init-lora_dropout-one", "darts-init-feature_decay-zero"])
def test_darts_construction_refuses_out_of_range(overrides, field) -> None:
    with pytest.raises(ValueError, match=field):
        darts_model(**overrides)


def test_darts_numpy_scalars_work_end_to_end(tmp_path) -> None:  # id: darts-numpy-scalars
    """numpy chunk lengths and darts' own numpy settings, fitted, saved and loaded."""
    from calf_forecaster.darts import CALFModel

    model = darts_model(input_chunk_length=np.int64(12), output_chunk_length=np.int64(6),
                        batch_size=np.int64(32), n_epochs=np.int64(1), random_state=np.int64(0),
                        n_layers=np.int64(2), lora_dropout=np.float64(0.1),
                        optimizer_kwargs={"lr": np.float64(1e-3)})
    assert not any(isinstance(v, np.generic) for v in model.model_params.values())
    model.fit(darts_series())
    forecast = model.predict(6)
    model.save(str(tmp_path / "model.pt"))
    loaded = CALFModel.load(str(tmp_path / "model.pt"))
    np.testing.assert_allclose(loaded.predict(6).values(), forecast.values())


def test_darts_warnings(caplog) -> None:
    """ids: darts-n_epochs-zero-logged, darts-tiny-spread-warns (and not for normal data)."""
    import warnings

    with caplog.at_level(logging.WARNING, logger="calf_forecaster.darts"):
        darts_model(n_epochs=0).fit(darts_series())
    assert any("n_epochs=0" in r.getMessage() for r in caplog.records)
    with pytest.warns(UserWarning, match="normalisation floor.*Scaler"):
        darts_model(n_epochs=0).fit(darts_series(scale=1e-6))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        darts_model(n_epochs=0).fit(darts_series())
    assert not [w for w in caught if "normalisation floor" in str(w.message)]


def test_darts_float32_near_its_range_forecasts_at_scale() -> None:  # id: darts-1e30-float32
    series = darts_series(scale=1e29, offset=1e30)
    model = darts_model()
    model.fit(series)
    forecast = model.predict(6).values()
    assert forecast.dtype == np.float32 and np.isfinite(forecast).all()
    assert (5e29 < np.abs(forecast)).all() and (np.abs(forecast) < 5e30).all()


def test_darts_too_many_tokens_are_refused_before_training(calls) -> None:
    """id: darts-fit-too-many-tokens. Target and covariate components share 64 positions."""
    with pytest.raises(ValueError, match="65 variates .* exceed the position table"):
        darts_model().fit(darts_series(columns=60),
                          past_covariates=darts_series(columns=5, prefix="x"))
    assert calls.trained == 0 and calls.built >= 1  # the backbone tells the table's size


SK_PREDICT_ROWS = [
    ("sk-predict-fh-beyond-fit", [1, 2, 3], ValueError, "different forecasting horizon"),
    ("sk-predict-fh-in-sample", [-1], ValueError, "different forecasting horizon"),
]


@pytest.mark.parametrize(("fh", "error", "match"), [row[1:] for row in SK_PREDICT_ROWS],
                         ids=[row[0] for row in SK_PREDICT_ROWS])
def test_sktime_predict_refuses_another_horizon(fitted_forecaster, fh, error, match) -> None:
    with pytest.raises(error, match=match):
        fitted_forecaster.predict(fh=fh)


DARTS_PREDICT_OWN_ROWS = [  # refused by darts' own checks
    ("darts-predict-other-components", lambda: {"series": darts_series(columns=2)}, ValueError,
     "must have equal number of components"),
    ("darts-predict-unexpected-past-covariates", lambda: {
        "series": darts_series(), "past_covariates": darts_series(prefix="x")}, ValueError,
     "trained without `past_covariates`"),
]


@pytest.mark.parametrize(("make_arguments", "error", "match"),
                         [row[1:] for row in DARTS_PREDICT_OWN_ROWS],
                         ids=[row[0] for row in DARTS_PREDICT_OWN_ROWS])
def test_darts_predict_refuses_other_columns(fitted_darts, make_arguments, error, match) -> None:
    with pytest.raises(error, match=match):
        fitted_darts.predict(6, **make_arguments())
