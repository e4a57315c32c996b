"""calf_forecaster.metrics: point metrics on known values and the M4 scores on the real Hourly files."""

from __future__ import annotations

import numpy as np
import pytest

from calf_forecaster.datasets import load_m4, load_m4_naive2
from calf_forecaster.metrics import (
    M4Scores,
    m4_scores,
    m4_weighted_average,
    mae,
    mase,
    mase_per_series,
    mse,
    owa,
    smape,
    smape_per_series,
)
from conftest import DATA_DIR


def test_metrics_on_known_values() -> None:
    forecast, actual = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
    assert mse(forecast, actual) == pytest.approx(5 / 3)
    assert mae(forecast, actual) == pytest.approx(1.0)
    assert smape(forecast, actual) == pytest.approx((0 + 200 / 5 + 200 * 2 / 6) / 3)
    assert mase(forecast, actual, np.array([1.0, 2.0, 4.0, 7.0]), 1) == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="shape"):
        mse(forecast, actual[:2])


def test_per_series_metrics_and_edge_cases() -> None:
    forecasts = {"a": np.array([1.0, 2.0]), "b": np.array([0.0, 4.0])}
    actuals = {"b": np.array([0.0, 2.0]), "a": np.array([1.0, 3.0])}  # matched by id, not order
    insamples = {"a": np.array([1.0, 3.0, 1.0, 3.0, 2.0]), "b": np.array([0.0, 4.0, 0.0])}
    # a: (0 + 200/5) / 2 = 20; b: the 0/0 term counts as 0, then 200*2/6 -> 100/3
    assert smape_per_series(forecasts, actuals) == pytest.approx([20.0, 100 / 3])
    assert smape(np.zeros(3), np.zeros(3)) == 0.0
    # a: MAE 0.5 / mean|lag-2 diffs| (0, 0, 1) = 1/3 -> 1.5; b: MAE 1 / (0) -> undefined
    assert mase_per_series({"a": forecasts["a"]}, {"a": actuals["a"]}, {"a": insamples["a"]},
                           2) == pytest.approx([1.5])
    with pytest.raises(ValueError, match="series 'b'.*MASE is undefined"):
        mase_per_series(forecasts, actuals, insamples, 2)
    with pytest.raises(ValueError, match="MASE is undefined"):
        mase(np.ones(2), np.ones(2), np.ones(5), 1)
    with pytest.raises(ValueError, match="more than 4 values"):
        mase(np.ones(2), np.ones(2), np.ones(4), 4)
    with pytest.raises(ValueError, match="series ids differ"):
        smape_per_series(forecasts, {"a": actuals["a"]})
    with pytest.raises(ValueError, match="NaN"):
        smape_per_series([np.array([np.nan, 1.0])], [np.array([1.0, 1.0])])
    with pytest.raises(TypeError, match="mappings"):
        smape_per_series(forecasts, [actuals["a"], actuals["b"]])


def test_owa_and_the_weighted_average_over_groups() -> None:
    assert owa(9.0, 1.5, 18.0, 2.0) == pytest.approx(0.5 * (0.5 + 0.75))
    small = M4Scores(smape=10.0, mase=1.0, naive2_smape=20.0, naive2_mase=2.0, n_series=1)
    large = M4Scores(smape=16.0, mase=4.0, naive2_smape=16.0, naive2_mase=4.0, n_series=3)
    total = m4_weighted_average({"A": small, "B": large})
    assert (total.smape, total.mase, total.n_series) == pytest.approx((14.5, 3.25, 4))
    assert (total.naive2_smape, total.naive2_mase) == pytest.approx((17.0, 3.5))
    assert total.owa == pytest.approx(0.5 * (14.5 / 17 + 3.25 / 3.5))  # not the mean of OWAs
    with pytest.raises(ValueError, match="positive"):
        owa(1.0, 1.0, 0.0, 1.0)
    with pytest.raises(ValueError, match="`scores`"):
        m4_weighted_average([])


def test_naive2_reproduces_the_official_m4_hourly_scores() -> None:
    if not (DATA_DIR / "m4" / "Hourly-naive2.csv").is_file():
        pytest.skip("shared M4 Hourly not present")
    train = load_m4("Hourly", "train", DATA_DIR, download=False)
    test = load_m4("Hourly", "test", DATA_DIR, download=False)
    naive2 = load_m4_naive2("Hourly", DATA_DIR)
    scores = m4_scores(naive2, test, train, naive2, seasonality=24)
    assert round(scores.smape, 3) == 18.383 and round(scores.mase, 3) == 2.395
    assert scores.n_series == 414 and scores.owa == pytest.approx(1.0, abs=1e-12)
    assert m4_weighted_average([scores]).owa == pytest.approx(1.0, abs=1e-12)
    # a forecast 10% too high everywhere is worse than Naive2
    worse = m4_scores({k: v * 1.1 for k, v in naive2.items()}, test, train, naive2, 24)
    assert worse.smape > 18.383 and worse.owa > 1.0
