"""Mixed precision through the core, sktime and darts, the FLOP formula of the speed benchmark,
and the one-window latency path.

bf16 autocast runs on every CPU (emulated where the CPU has no bf16 units), so these tests run
everywhere with the tiny GPT-2 of :mod:`calf_forecaster.testing`.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from calf_forecaster import CALF, TrainingConfig
from calf_forecaster.losses import calf_loss
from calf_forecaster.pipeline import CALFPipeline
from calf_forecaster.testing import tiny_config
from calf_forecaster.training import predict_windows

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REPO_ROOT = Path(__file__).resolve().parents[1]


def _benchmark_module(name: str = "speed"):
    """benchmarks/<name>.py, imported as a module (a script, not part of the package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "benchmarks" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses look their module up while it executes
        spec.loader.exec_module(module)
    return sys.modules[name]


_speed_module = _benchmark_module


def test_paired_precision_pairs_bf16_with_the_float32_run_of_the_same_seed() -> None:
    """Only records equal in everything but the precision pair up; the differences are paired."""
    paired = _benchmark_module("paired_precision")

    def record(seed: int, kwargs: str, mse: float, epochs: int = 3, variant: str = "random-init"):
        spec = {"suite": "long-term", "dataset": "ETTh1", "source": None, "seq_len": 96,
                "pred_len": 96, "percent": None, "loss_setting": "full", "variant": variant,
                "backbone": "gpt2-random", "seed": seed, "max_epochs": epochs, "stride": 1,
                "max_rows": None, "trainer_kwargs": kwargs}
        return {"status": "ok", "spec": spec, "metrics": {"mse": mse, "mae": mse / 2},
                "cost": {"epochs": epochs, "seconds_per_epoch": 100.0 if "bf16" in kwargs else 180.0},
                "protocol": {"selection": {"best_epoch": 2, "best_validation_loss": 0.9}}}

    records = [record(1, "{}", 0.40), record(1, paired.BF16, 0.41),
               record(2, '{"precision":"32-true"}', 0.44), record(2, paired.BF16, 0.43),
               record(3, paired.BF16, 0.5),  # no float32 twin
               record(4, "{}", 0.4, epochs=10), record(4, paired.BF16, 0.4, epochs=3),
               record(1, "{}", 0.3, variant="no-llm")]
    found = paired.pairs(records, "random-init")
    assert [(a["spec"]["seed"], b["spec"]["seed"]) for a, b in found] == [(1, 1), (2, 2)]
    table = paired.markdown(found)
    assert "0.0000 ± 0.0141 |" in table  # MSE differences +0.01 and -0.01: mean 0
    assert "1.80x" in table and "0.9000 (3)" in table


def sines(length: int = 150, n_variates: int = 2) -> np.ndarray:
    steps = np.arange(length)[:, None]
    return np.sin(steps / 4 + np.arange(n_variates)) * 3.0 + 20.0  # (T, M)


# ------------------------------------------------------------------ the FLOP formula


def test_flops_per_window_matches_torch_flop_counter_on_a_tiny_shape() -> None:
    """Forward (both branches), backward and prediction FLOPs of the formula equal a direct count."""
    from torch.utils.flop_counter import FlopCounterMode

    speed = _speed_module()
    config = tiny_config(pretrained=False, lora_r=4)
    torch.manual_seed(0)
    model = CALF.from_pretrained(config).train()
    batch, n_variates = 3, 5
    x = torch.randn(batch, config.seq_len, n_variates)
    y = torch.randn(batch, config.pred_len, n_variates)
    shapes = {"seq_len": config.seq_len, "pred_len": config.pred_len, "d_model": 32,
              "n_layers": 2, "encoder_ff_dim": 64, "n_prototypes": 16, "lora_r": 4}
    with FlopCounterMode(display=False) as forward:
        output = model(x, with_text_branch=True)
    loss = calf_loss(output, y, TrainingConfig()).total
    with FlopCounterMode(display=False) as backward:
        loss.backward()
    with FlopCounterMode(display=False) as prediction:  # train mode: no fused encoder fast path
        model.predict(x)
    train = speed.flops_per_window(n_variates, "train", batch, **shapes)
    predict = speed.flops_per_window(n_variates, "predict", batch, **shapes)
    assert train["forward"] == pytest.approx(forward.get_total_flops() / batch, rel=1e-9)
    assert train["backward"] == pytest.approx(backward.get_total_flops() / batch, rel=1e-9)
    assert predict["total"] == pytest.approx(prediction.get_total_flops() / batch, rel=1e-9)


def test_flops_per_window_at_gpt2_small_etth1() -> None:
    """The figures docs/benchmarks.md quotes (M=7, batch 32): 3.13 GFLOP to train, 0.68 to predict."""
    speed = _speed_module()
    assert speed.flops_per_window(7, "train", 32)["total"] / 1e9 == pytest.approx(3.132, abs=1e-3)
    assert speed.flops_per_window(7, "predict")["total"] / 1e9 == pytest.approx(0.677, abs=1e-3)


# ------------------------------------------------------------------ the core


def test_speed_benchmark_reads_the_batch_that_fits_off_two_measured_batches() -> None:
    """Peak memory is linear in the batch: through (1, 3.0 GB) and (8, 17.0 GB) the line is
    2 GB per window over 1 GB, so 22.5 GB holds batch 10 (21 GB), not 11 (23 GB); a shape measured
    at one batch, a prediction and an out-of-memory run give no line."""
    speed = _speed_module()
    results = [
        {"shape": "traffic", "task": "train", "batch_size": 1, "precision": "32",
         "peak_rss_gb": 3.0},
        {"shape": "traffic", "task": "train", "batch_size": 8, "precision": "32",
         "peak_rss_gb": 17.0},
        {"shape": "traffic", "task": "predict", "batch_size": 8, "precision": "32",
         "peak_rss_gb": 5.0},
        {"shape": "etth1", "task": "train", "batch_size": 32, "precision": "32",
         "peak_rss_gb": 1.3},
        {"shape": "ecl", "task": "train", "batch_size": 32, "precision": "32",
         "out_of_memory": True, "limit_gb": 22.5},
        {"shape": "ecl", "task": "train", "batch_size": 1, "precision": "32", "peak_rss_gb": 1.5},
    ]
    (fit,) = speed.batches_that_fit(results, 22.5)
    assert fit["shape"] == "traffic" and fit["measured"] == [1, 8]
    assert fit["per_window_gb"] == pytest.approx(2.0) and fit["fixed_gb"] == pytest.approx(1.0)
    assert fit["largest_batch"] == 10


def test_core_bf16_prediction_is_finite_and_close_and_float32_is_the_default() -> None:
    torch.manual_seed(0)
    model = CALF.from_pretrained(tiny_config()).eval()
    windows = sines()[None, -16:].repeat(3, axis=0) + np.arange(3)[:, None, None]  # (3, L, M)
    default = predict_windows(model, windows)
    for full in ("32-true", 32, "32", None):
        np.testing.assert_array_equal(predict_windows(model, windows, precision=full), default)
    bf16 = predict_windows(model, windows, precision="bf16-mixed")
    assert np.isfinite(bf16).all() and not np.array_equal(bf16, default)
    assert np.abs(bf16 - default).max() < 0.05 * np.abs(default - 20).max() + 0.05


def test_pipeline_bf16_training_and_prediction_stay_close_to_float32() -> None:
    series, context = [sines()], sines()[None, -16:]
    forecasts = {}
    for precision in ("32-true", "bf16-mixed"):
        pipeline = CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=2, seed=0),
                                      trainer_kwargs={"precision": precision})
        pipeline.fit(series)
        forecasts[precision] = pipeline.forecast(context)
    assert np.isfinite(forecasts["bf16-mixed"]).all()
    spread = np.abs(forecasts["32-true"] - 20).max()
    assert np.abs(forecasts["bf16-mixed"] - forecasts["32-true"]).max() < 0.1 * spread


def test_the_latency_path_gives_the_forecasts_of_the_batched_path() -> None:
    """One window at a time (batch 1, the latency path) gives the forecasts of one batch."""
    torch.manual_seed(0)
    model = CALF.from_pretrained(tiny_config()).eval()
    windows = np.stack([sines()[i:i + 16] for i in range(0, 40, 8)])  # (5, L, M)
    batched = predict_windows(model, windows)
    one_by_one = np.concatenate([predict_windows(model, w[None]) for w in windows])
    np.testing.assert_allclose(one_by_one, batched, rtol=1e-6, atol=1e-6)
    as_float32 = predict_windows(model, windows.astype(np.float32))  # no float64 copy needed
    np.testing.assert_allclose(as_float32, batched, rtol=1e-6, atol=1e-5)


# ------------------------------------------------------------------ the adapters


def _frame(length: int = 150) -> pd.DataFrame:
    index = pd.date_range("2021-01-01", periods=length, freq="h")
    return pd.DataFrame(sines(length), index=index, columns=["a", "b"])


def test_sktime_bf16_training_and_prediction_stay_close_to_float32() -> None:
    pytest.importorskip("sktime")
    from calf_forecaster.sktime import CALFForecaster

    y, forecasts = _frame(), {}
    settings = {key: value for key, value in tiny_config().to_dict().items()
                if key in ("backbone", "n_layers", "n_prototypes", "n_heads", "encoder_ff_dim")}
    for precision in ("32-true", "bf16-mixed"):
        forecaster = CALFForecaster(seq_len=16, max_epochs=2, random_state=0,
                                    trainer_kwargs={"precision": precision}, **settings)
        forecasts[precision] = forecaster.fit(y, fh=list(range(1, 9))).predict().to_numpy()
        if precision == "32-true":  # the default (no precision) is bit-identical
            default = CALFForecaster(seq_len=16, max_epochs=2, random_state=0, **settings)
            np.testing.assert_array_equal(default.fit(y, fh=list(range(1, 9))).predict()
                                          .to_numpy(), forecasts[precision])
    assert np.isfinite(forecasts["bf16-mixed"]).all()
    spread = np.abs(forecasts["32-true"] - 20).max()
    assert np.abs(forecasts["bf16-mixed"] - forecasts["32-true"]).max() < 0.1 * spread


def test_darts_prediction_autocasts_under_bf16_mixed(tiny_gpt2: Path,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    """darts' predict honours ``pl_trainer_kwargs={"precision": "bf16-mixed"}`` (Lightning's
    predict loop autocasts): the head computes in bfloat16, the forecast is close to float32's;
    without ``precision`` the forecast is float32's, bit for bit."""
    pytest.importorskip("darts")
    from darts import TimeSeries

    from calf_forecaster.darts import CALFModel

    series = TimeSeries.from_dataframe(_frame().astype(np.float32))
    forecasts, dtypes = {}, {}
    for precision in (None, "32-true", "bf16-mixed"):
        trainer = {"accelerator": "cpu", **({"precision": precision} if precision else {})}
        model = CALFModel(input_chunk_length=16, output_chunk_length=8, backbone=str(tiny_gpt2),
                          n_layers=2, n_prototypes=8, n_heads=4, encoder_ff_dim=32, batch_size=64,
                          n_epochs=1, random_state=0, pl_trainer_kwargs=trainer)
        with caplog.at_level(logging.WARNING):
            model.fit(series)
        seen: list[torch.dtype] = []
        hook = model.model.calf.head.register_forward_hook(
            lambda module, args, output, seen=seen: seen.append(output.dtype))
        forecasts[precision] = model.predict(8, series=series).values()
        hook.remove()
        dtypes[precision] = set(seen)
    assert dtypes == {None: {torch.float32}, "32-true": {torch.float32},
                      "bf16-mixed": {torch.bfloat16}}
    # darts warns "float16-like precision" even for bf16-mixed, which it recommends: dropped
    assert not [r for r in caplog.records if "float16-like" in r.getMessage()]
    np.testing.assert_array_equal(forecasts[None], forecasts["32-true"])
    assert np.isfinite(forecasts["bf16-mixed"]).all()
    spread = np.abs(forecasts["32-true"] - 20).max()
    assert np.abs(forecasts["bf16-mixed"] - forecasts["32-true"]).max() < 0.1 * spread
