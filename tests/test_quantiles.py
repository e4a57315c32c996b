"""Quantile forecasts in the core (``CALFConfig.quantiles``) and through both adapters.

The core: validated levels, a (B, H, M, Q) head whose quantiles never cross, the pinball loss
(darts' quantile loss term for term), point forecasts unchanged when the option is off. The
adapters: sktime's ``predict_quantiles`` / ``predict_interval`` and darts' ``QuantileRegression``
are the same network and loss, and calibration moves towards the nominal coverage with training.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from calf_forecaster import CALF, CALFConfig, TrainingConfig
from calf_forecaster.losses import calf_loss, pinball_loss
from calf_forecaster.pipeline import CALFPipeline
from calf_forecaster.testing import TINY_SETTINGS, tiny_config, tiny_parts

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LEVELS = (0.1, 0.5, 0.9)


def sines(length: int = 160) -> np.ndarray:
    """Two columns, a sine and a trending cosine, (T, 2)."""
    steps = np.arange(float(length))
    return np.stack([np.sin(steps / 4), np.cos(steps / 7) + steps / 80], axis=1)


def network(quantiles: tuple[float, ...] | None = LEVELS, seed: int = 0) -> CALF:
    config = CALFConfig(**TINY_SETTINGS, backbone="tiny-gpt2-in-memory", quantiles=quantiles)
    torch.manual_seed(seed)
    return CALF(config, tiny_parts(config))


# ---------------------------------------------------------------------- configuration


@pytest.mark.parametrize("levels, match", [
    ("0.5", "must be None or a sequence"),
    ([], "non-empty sequence"),
    ([0.5, True], "non-empty sequence of numbers"),
    ([0.0, 0.5], r"must lie in \(0, 1\)"),
    ([0.5, 1.0], r"must lie in \(0, 1\)"),
    ([0.9, 0.5, 0.1], "sorted and unique"),
    ([0.1, 0.5, 0.5], "sorted and unique"),
    ([0.1, 0.9], "must include 0.5"),
])
def test_quantile_levels_are_validated(levels, match) -> None:
    with pytest.raises(ValueError, match=match):
        CALFConfig(quantiles=levels)


def test_quantile_levels_are_stored_as_a_tuple_of_floats_and_round_trip() -> None:
    config = CALFConfig(quantiles=[np.float32(0.25), 0.5, 0.75])
    assert config.quantiles == (0.25, 0.5, 0.75)
    assert CALFConfig.from_dict(config.to_dict()) == config
    assert CALFConfig().quantiles is None


# ---------------------------------------------------------------------- network


def test_the_head_forecasts_every_quantile_of_every_variate() -> None:
    model = network().eval()
    assert model.head.out_features == len(LEVELS) * TINY_SETTINGS["pred_len"]
    output = model(torch.randn(5, 16, 3))
    assert output.forecast.shape == (5, 8, 3, 3) and output.quantiles == LEVELS
    assert model.predict(torch.randn(2, 16, 3)).shape == (2, 8, 3, 3)


@pytest.mark.parametrize("seed", range(4))
def test_quantiles_never_cross_on_random_inputs(seed: int) -> None:
    """Random weights with a head large enough that unsorted outputs would cross everywhere."""
    model = network(quantiles=(0.05, 0.2, 0.5, 0.8, 0.95), seed=seed)
    with torch.no_grad():
        model.head.weight.normal_(0.0, 3.0)
        model.head.bias.normal_(0.0, 3.0)
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(16, 16, 4, generator=generator) * 10 ** (seed - 1) + 5.0 * seed
    train = model.train()(x)  # both branches
    for forecast in (train.forecast, train.text_forecast, model.eval()(x).forecast):
        assert forecast.shape[-1] == 5
        assert (forecast.diff(dim=-1) >= 0).all()
    raw = model.head(torch.randn(64, 32)).reshape(64, 5, -1)
    assert (raw.diff(dim=1) < 0).any()  # sorting, not luck, keeps them in order


#: ``CALFPipeline.build(tiny_config(), TrainingConfig(max_epochs=2, seed=0, batch_size=32,
#: validation_size=0.25, patience=1))`` fitted on ``sines()`` and forecasting its last 16 steps,
#: as computed by the package before quantile forecasts existed (commit 38be7cc, torch 2.13 CPU,
#: x86-64), as float.hex of the (1, 8, 2) forecast.
POINT_REFERENCE = [
    '0x1.6623aadffcd74p-1', '0x1.3f2565ee6b606p+0', '-0x1.2fe4a3a21c305p+0', '0x1.51779ad998302p+0',
    '0x1.60e945fbd32cdp+0', '0x1.03b95d2e9ae65p+0', '0x1.d055f964c218ap-2', '0x1.6bcd2afb57a95p+0',
    '0x1.a370df853630bp-2', '0x1.1b1707d0f6867p+0', '0x1.a5a5ccf04e101p-2', '0x1.22c837f4ca7c3p+0',
    '0x1.31f88070fdf95p+0', '0x1.d838bd8773de6p-1', '0x1.59db6f7f42fbcp-4', '0x1.0d307fed841e4p+0',
]


def test_point_forecasts_are_bit_identical_to_before_quantiles() -> None:
    """Off, the option changes nothing: the same fit (training, validation, early stopping) and
    forecast as before it existed, to the last bit."""
    series = sines()
    pipeline = CALFPipeline.build(tiny_config(), TrainingConfig(
        max_epochs=2, seed=0, batch_size=32, validation_size=0.25, patience=1))
    pipeline.fit([series])
    forecast = pipeline.forecast(series[None, -16:])
    assert forecast.shape == (1, 8, 2)
    if torch.__version__.split("+")[0] != "2.13.0":
        pytest.skip("the reference was recorded with torch 2.13 on CPU")
    expected = np.array([float.fromhex(v) for v in POINT_REFERENCE]).reshape(1, 8, 2)
    np.testing.assert_array_equal(forecast, expected)


def test_a_point_network_runs_the_point_head_only() -> None:
    """The same weights through the point path written out: (B, M, D) -> (B, H, M), no sort."""
    model = network(quantiles=None).eval()
    x = torch.randn(3, 16, 2, dtype=torch.float64)
    seen = []
    handle = model.head.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        forecast = model.predict(x)
    finally:
        handle.remove()
    mean = x.mean(dim=1, keepdim=True)
    std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + 1e-5)
    expected = (seen[0].transpose(1, 2).double() * std + mean).to(x.dtype)
    assert torch.equal(forecast, expected)
    assert model.n_quantiles is None and model.head.out_features == 8


# ---------------------------------------------------------------------- losses


def test_pinball_loss_by_hand() -> None:
    forecast = torch.tensor([[[[0.0, 1.0, 2.0]]]])  # (1, 1, 1, 3)
    target = torch.tensor([[[1.5]]])
    # errors y - f = 1.5, 0.5, -0.5 at levels 0.1, 0.5, 0.9: 0.15 + 0.25 + 0.05
    assert float(pinball_loss(forecast, target, LEVELS)) == pytest.approx(0.45)
    weight = torch.tensor([[[2.0]]])
    assert float(pinball_loss(forecast, target, LEVELS, weight)) == pytest.approx(0.9)


def test_pinball_loss_is_darts_quantile_regression_loss() -> None:
    likelihood_models = pytest.importorskip("darts.utils.likelihood_models.torch")
    likelihood = likelihood_models.QuantileRegression([0.05, 0.25, 0.5, 0.75, 0.95])
    generator = torch.Generator().manual_seed(0)
    forecast = torch.randn(4, 6, 2, 5, generator=generator).sort(dim=-1).values
    target = torch.randn(4, 6, 2, generator=generator)
    weight = torch.rand(4, 6, 2, generator=generator)
    for w in (None, weight):
        torch.testing.assert_close(
            pinball_loss(forecast, target, likelihood.quantiles, w),
            likelihood.compute_loss(forecast, target, w), rtol=0, atol=0)


def test_calf_loss_of_a_quantile_model() -> None:
    """Supervised: pinball on the target tokens; output term: d over every quantile of both."""
    model = network().eval()  # eval: no dropout, the textual branch still runs when asked
    x, y = torch.randn(4, 16, 3), torch.randn(4, 8, 2)
    output = model(x, with_text_branch=True)
    assert output.text_forecast.shape == (4, 8, 3, 3)
    training = TrainingConfig()
    parts = calf_loss(output, y, training)
    torch.testing.assert_close(parts.supervised,
                               pinball_loss(output.forecast[:, :, 1:], y, LEVELS))
    torch.testing.assert_close(parts.output, torch.nn.functional.l1_loss(
        output.forecast[:, :, 1:], output.text_forecast[:, :, 1:]))
    mask = torch.ones(4, 8, 2)
    mask[:, -2:] = 0
    masked = calf_loss(output, y, training.replace(output_loss="mase"), mask=mask, insample=x)
    assert torch.isfinite(masked.total)
    torch.testing.assert_close(masked.supervised,
                               pinball_loss(output.forecast[:, :, 1:], y, LEVELS, mask))


# ---------------------------------------------------------------------- pipeline


def test_pipeline_fits_and_forecasts_quantiles_of_the_target_columns(tmp_path) -> None:
    series = sines() * [1.0, 50.0] + [0.0, 300.0]  # covariate first, target last
    pipeline = CALFPipeline.build(tiny_config(quantiles=LEVELS), TrainingConfig(
        max_epochs=1, seed=0, batch_size=64, validation_size=0.25, patience=1))
    run = pipeline.fit([series], n_targets=1)
    assert run.epochs == 1 and pipeline.n_targets == 1
    context = series[None, -16:]
    forecast = pipeline.forecast(context)
    assert forecast.shape == (1, 8, 1, 3) and (np.diff(forecast, axis=-1) >= 0).all()
    assert 100 < forecast[..., 1].mean() < 500  # in the target column's own units
    loaded, _ = CALFPipeline.load(pipeline.save(tmp_path / "q"))
    assert loaded.config.quantiles == LEVELS and loaded.n_targets == 1
    np.testing.assert_array_equal(loaded.forecast(context), forecast)


# ---------------------------------------------------------------------- sktime


def sktime_quantile_forecaster(**changes: object):
    sktime = pytest.importorskip("calf_forecaster.sktime")
    params = {**sktime.CALFForecaster.get_test_params()[2], "seq_len": 8, "max_epochs": 1}
    params.update(changes)
    return sktime.CALFForecaster(**params)


def hourly_frame(length: int = 60, columns: int = 2) -> object:
    import pandas as pd

    values = sines(length)[:, :columns]
    return pd.DataFrame(values, index=pd.date_range("2021-01-01", periods=length, freq="h"),
                        columns=[f"y{k}" for k in range(columns)])


def test_sktime_quantiles_intervals_and_variance_follow_the_quantile_head() -> None:
    y = hourly_frame()
    forecaster = sktime_quantile_forecaster().fit(y, fh=[1, 2, 3])
    assert forecaster.get_tag("capability:pred_int") is True
    levels = forecaster.quantiles
    quantiles = forecaster.predict_quantiles(alpha=list(levels))
    assert list(quantiles.columns) == [(c, a) for c in y.columns for a in levels]
    values = quantiles.to_numpy().reshape(3, 2, len(levels))
    assert (np.diff(values, axis=-1) >= 0).all()
    point = forecaster.predict()
    np.testing.assert_array_equal(point.to_numpy(), values[..., levels.index(0.5)])
    between = forecaster.predict_quantiles(alpha=[0.15]).to_numpy().reshape(3, 2)
    np.testing.assert_allclose(between, values[..., 0] + (0.15 - 0.05) / 0.2
                               * (values[..., 1] - values[..., 0]))
    interval = forecaster.predict_interval(coverage=0.9).to_numpy().reshape(3, 2, 2)
    np.testing.assert_array_equal(interval, values[..., [0, -1]])
    assert (forecaster.predict_var().to_numpy() > 0).all()


def test_sktime_refuses_levels_outside_the_fitted_ones() -> None:
    """ids: sk-quantiles-outside, sk-quantiles-none (docs/bad-input.md)."""
    y = hourly_frame()
    forecaster = sktime_quantile_forecaster(max_epochs=0).fit(y, fh=[1, 2])
    with pytest.raises(ValueError, match=r"alpha \[0.01\] lies outside the fitted quantile "
                                         r"levels \[0.05, 0.95\]"):
        forecaster.predict_quantiles(alpha=[0.01, 0.5])
    with pytest.raises(ValueError, match="outside the fitted quantile levels"):
        forecaster.predict_interval(coverage=0.95)
    point = sktime_quantile_forecaster(max_epochs=0, quantiles=None).fit(y, fh=[1, 2])
    assert point.get_tag("capability:pred_int") is False
    with pytest.raises(NotImplementedError, match="capability to return quantile"):
        point.predict_quantiles(alpha=[0.5])


def test_darts_and_sktime_give_the_same_quantiles(tmp_path) -> None:
    """Same seed, data, windows, backbone and loss weights: the two adapters train the same
    quantile network with the same pinball loss (one batch per epoch, no dropout)."""
    pytest.importorskip("darts")
    sktime = pytest.importorskip("calf_forecaster.sktime")
    from darts import TimeSeries
    from darts.utils.likelihood_models.torch import QuantileRegression

    from calf_forecaster.darts import CALFModel
    from calf_forecaster.testing import save_tiny_gpt2

    backbone = save_tiny_gpt2(tmp_path / "gpt2-no-dropout", seed=0, resid_pdrop=0.0,
                              embd_pdrop=0.0, attn_pdrop=0.0)
    common = {"backbone": str(backbone), "n_layers": 2, "n_prototypes": 8, "n_heads": 4,
              "encoder_ff_dim": 32, "dropout": 0.0, "lora_dropout": 0.0}
    trainer = {"accelerator": "cpu", "enable_progress_bar": False,
               "enable_model_summary": False, "logger": False}
    levels = [0.1, 0.25, 0.5, 0.75, 0.9]
    frame = hourly_frame(60).astype(np.float32)  # 60 - 12 - 6 + 1 = 43 windows, one batch
    darts_model = CALFModel(12, 6, batch_size=64, n_epochs=3, random_state=7,
                            likelihood=QuantileRegression(levels),
                            pl_trainer_kwargs=dict(trainer), **common)
    darts_model.fit(TimeSeries.from_dataframe(frame))
    forecaster = sktime.CALFForecaster(
        seq_len=12, batch_size=64, max_epochs=3, validation_size=0, scale=False,
        random_state=7, quantiles=levels, trainer_kwargs=dict(trainer), **common)
    forecaster.fit(frame, fh=list(range(1, 7)))
    darts_quantiles = darts_model.predict(6, predict_likelihood_parameters=True)
    assert list(darts_quantiles.components) == [f"{c}_q{q:.3f}" for c in frame.columns
                                                for q in levels]
    np.testing.assert_allclose(darts_quantiles.values(),
                               forecaster.predict_quantiles(alpha=levels).to_numpy(),
                               rtol=1e-4, atol=1e-5)


# ---------------------------------------------------------------------- calibration


def test_interval_coverage_moves_towards_nominal_with_training(ett_h1, record_property) -> None:
    """The 80% interval (quantiles 0.1 and 0.9) on held-out ETTh1 windows, after 1 and after 8
    epochs of the tiny backbone: reported, and asserted only to move towards 0.8."""
    values = ett_h1.to_numpy()[:3000]
    train, test = values[:2400], values[2400 - 48:]
    coverage = {}
    for epochs in (1, 8):
        pipeline = CALFPipeline.build(
            tiny_config(seq_len=48, pred_len=24, quantiles=LEVELS),
            TrainingConfig(max_epochs=epochs, seed=0, batch_size=256, validation_size=0,
                           cosine_t_max=None, learning_rate=1e-3))
        pipeline.fit([train])
        starts = range(0, len(test) - 48 - 24 + 1, 12)
        context = np.stack([test[s:s + 48] for s in starts])  # (N, 48, 7)
        actual = np.stack([test[s + 48:s + 72] for s in starts])  # (N, 24, 7)
        forecast = pipeline.forecast(context)  # (N, 24, 7, 3)
        inside = (forecast[..., 0] <= actual) & (actual <= forecast[..., 2])
        coverage[epochs] = float(inside.mean())
    print(f"ETTh1 80% interval coverage on {len(starts)} held-out windows: "
          f"1 epoch {coverage[1]:.3f}, 8 epochs {coverage[8]:.3f}")
    record_property("coverage_1_epoch", coverage[1])
    record_property("coverage_8_epochs", coverage[8])
    assert abs(coverage[8] - 0.8) < abs(coverage[1] - 0.8)
