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
