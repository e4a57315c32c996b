"""Exogenous data and column counts in the sktime adapter: X's columns are variate tokens placed
before y's, only y is forecast and scored, and a pretrained network forecasts series with other
column counts without training (zero-shot)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("sktime")

from calf_forecaster.preprocessing import WindowDataset  # noqa: E402
from calf_forecaster.sktime import CALFForecaster  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEQ_LEN = 8


def tiny(**changes: object) -> CALFForecaster:
    params = {**CALFForecaster.get_test_params()[0], "validation_size": 0, "max_epochs": 1,
              "seq_len": SEQ_LEN}
    params.update(changes)
    return CALFForecaster(**params)


def frame(length: int = 60, columns: int = 1, prefix: str = "y", seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    steps = np.arange(float(length))
    values = np.stack([np.sin(steps / (3 + k)) + 0.1 * rng.standard_normal(length)
                       for k in range(columns)], axis=1)
    return pd.DataFrame(values, index=pd.date_range("2021-01-01", periods=length, freq="h"),
                        columns=[f"{prefix}{k}" for k in range(columns)])


def contexts(forecaster: CALFForecaster, **predict_kwargs: object) -> list[np.ndarray]:
    """The raw (N, L, M) context windows that one predict call gives the pipeline."""
    seen: list[np.ndarray] = []
    pipeline = forecaster.pipeline_
    forecast = pipeline.forecast
    pipeline.forecast = lambda context: (seen.append(np.array(context)), forecast(context))[1]
    try:
        forecaster.predict(**predict_kwargs)
    finally:
        del pipeline.forecast
    return seen


def test_window_dataset_targets_are_the_last_columns() -> None:
    series = np.arange(40.0).reshape(20, 2)
    x, y = WindowDataset(series, 4, 3, n_targets=1)[0]
    assert x.shape == (4, 2) and y.shape == (3, 1)
    np.testing.assert_array_equal(y.numpy()[:, 0], series[4:7, 1])


def test_x_columns_are_tokens_before_y_and_only_y_is_forecast() -> None:
    y, X = frame(52), frame(55, columns=2, prefix="x", seed=1)
    forecaster = tiny(scale=False).fit(y.iloc[:48], X=X.iloc[:48], fh=[1, 2, 3])
    assert forecaster.get_tag("capability:exogenous") is True
    assert list(forecaster.columns_) == ["y0"] and list(forecaster.X_columns_) == ["x0", "x1"]
    assert forecaster.pipeline_.n_targets == 1
    x = contexts(forecaster)[0]  # (1, L, 3)
    np.testing.assert_allclose(x[0, :, :2], X.iloc[48 - SEQ_LEN:48].to_numpy())  # first
    np.testing.assert_allclose(x[0, :, 2], y.iloc[48 - SEQ_LEN:48, 0].to_numpy())  # last
    forecast = forecaster.predict()
    assert list(forecast.columns) == ["y0"] and len(forecast) == 3

    shuffled = X.iloc[:48].sample(frac=1.0, random_state=0).set_axis(X.index[:48])
    changed = tiny(scale=False).fit(y.iloc[:48], X=shuffled, fh=[1, 2, 3]).predict()
    assert not np.allclose(changed.to_numpy(), forecast.to_numpy())  # y sees X


def test_x_for_the_future_only_is_accepted_and_not_needed() -> None:
    y, X = frame(48), frame(51, columns=2, prefix="x", seed=1)
    forecaster = tiny().fit(y, X=X.iloc[:48], fh=[1, 2, 3])
    without = forecaster.predict()
    pd.testing.assert_frame_equal(forecaster.predict(X=X.iloc[48:]), without)
    pd.testing.assert_frame_equal(forecaster.predict(X=X), without)


def test_update_extends_the_x_history_and_can_train_on_it() -> None:
    y, X = frame(60), frame(60, columns=2, prefix="x", seed=1)
    forecaster = tiny(scale=False).fit(y.iloc[:48], X=X.iloc[:48], fh=[1, 2])
    forecaster.update(y.iloc[48:56], X=X.iloc[48:56], update_params=False)
    x = contexts(forecaster)[0]
    np.testing.assert_allclose(x[0, :, :2], X.iloc[56 - SEQ_LEN:56].to_numpy())
    before = forecaster.predict()
    forecaster.update(y.iloc[56:], X=X.iloc[56:], update_params=True)  # trains on all of it
    assert forecaster.n_train_windows_ == 60 - SEQ_LEN - 2 + 1
    assert not np.allclose(forecaster.predict().to_numpy(), before.to_numpy())
    with pytest.raises(ValueError, match="X lacks"):
        tiny().fit(y.iloc[:48], X=X.iloc[:48], fh=[1, 2]).update(
            y.iloc[48:], update_params=True)  # no X for the new time points


def test_panel_y_with_panel_x_is_one_global_model() -> None:
    def panel(data: pd.DataFrame) -> pd.DataFrame:
        parts = {name: data.iloc[shift:shift + 40].set_axis(data.index[:40])
                 for name, shift in (("a", 0), ("b", 10))}
        return pd.concat(parts, names=["series", "time"])

    y, X = panel(frame(60)), panel(frame(60, columns=2, prefix="x", seed=1))
    forecaster = tiny().fit(y, X=X, fh=[1, 2])
    forecast = forecaster.predict()
    assert forecast.index.get_level_values(0).unique().tolist() == ["a", "b"]
    assert list(forecast.columns) == ["y0"] and np.isfinite(forecast.to_numpy()).all()
    quantiles = tiny(quantiles=(0.1, 0.5, 0.9)).fit(y, X=X, fh=[1, 2]).predict_quantiles(
        alpha=[0.1, 0.9])
    assert quantiles.shape == (4, 2)


def test_pickled_forecaster_keeps_x_and_its_columns() -> None:
    import pickle

    y, X = frame(48), frame(48, columns=2, prefix="x", seed=1)
    forecaster = tiny().fit(y, X=X, fh=[1, 2])
    loaded = pickle.loads(pickle.dumps(forecaster))
    assert list(loaded.X_columns_) == ["x0", "x1"] and loaded.pipeline_.n_targets == 1
    pd.testing.assert_frame_equal(loaded.predict(), forecaster.predict())


# ---------------------------------------------------------------------- zero-shot


def test_zero_shot_on_another_number_of_columns() -> None:
    """pretrain on a one-column panel; fit with max_epochs=0 on three columns, or with X."""
    source = pd.concat({name: frame(60, seed=seed) for name, seed in (("a", 0), ("b", 1))},
                       names=["series", "time"])
    forecaster = tiny(max_epochs=1)
    forecaster.pretrain(source, fh=[1, 2, 3])
    pretrained = {k: v.clone() for k, v in forecaster.pretrained_network_.state_dict().items()}
    forecaster.set_params(max_epochs=0)

    target = frame(40, columns=3, prefix="z", seed=2) * 10 + 5
    forecast = forecaster.fit(target, fh=[1, 2, 3]).predict()
    assert list(forecast.columns) == ["z0", "z1", "z2"] and np.isfinite(forecast.to_numpy()).all()
    assert forecaster.n_train_windows_ == 0  # no training
    assert forecaster.scaler_.mean_.shape == (3,)  # the scaler is refit on the fit data
    state = forecaster.network_.state_dict()
    changed = [k for k in pretrained if not torch.equal(state[k], pretrained[k])]
    assert not changed, changed
    assert 0 < forecast.to_numpy().mean() < 15  # in the target's units

    with pytest.raises(ValueError, match=r"parameters \['seq_len'\] differ"):
        forecaster.set_params(seq_len=6).fit(target, fh=[1, 2])
    forecaster.set_params(seq_len=SEQ_LEN)
    X = frame(40, columns=2, prefix="x", seed=3)
    with_x = forecaster.fit(target[["z0"]], X=X, fh=[1, 2]).predict()
    assert list(with_x.columns) == ["z0"] and np.isfinite(with_x.to_numpy()).all()
