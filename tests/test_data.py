from __future__ import annotations

import numpy as np
import pytest

from calf_forecaster.preprocessing import (
    ChannelScaler,
    WindowDataset,
    check_values,
    sliding_windows,
    split_for_validation,
)


def test_check_values_errors_are_specific() -> None:
    with pytest.raises(ValueError, match=r"1 NaN or infinite values \(first at row 2, column 1\)"):
        check_values(np.array([[1.0, 2], [3, 4], [5, np.nan]]))
    with pytest.raises(TypeError, match="must be numeric"):
        check_values(np.array([["a", "b"]]))
    with pytest.raises(TypeError, match="must be numeric"):
        check_values(np.array([True, False]))
    with pytest.raises(ValueError, match="rank 1"):
        check_values(np.zeros((2, 3, 4)))
    assert check_values([1, 2, 3]).shape == (3, 1)


def test_sliding_windows_are_every_pair_in_order() -> None:
    series = np.arange(20.0).reshape(10, 2)
    x, y = sliding_windows(series, 4, 3)
    assert x.shape == (4, 4, 2) and y.shape == (4, 3, 2)
    np.testing.assert_array_equal(x[1], series[1:5])
    np.testing.assert_array_equal(y[-1], series[7:10])
    with pytest.raises(ValueError, match="has 5 time steps but 7 are needed"):
        sliding_windows(series[:5], 4, 3)


def test_panel_dataset_indexes_every_window_of_every_series() -> None:
    panel = [np.arange(24.0).reshape(12, 2), 100 + np.arange(16.0).reshape(8, 2)]
    dataset = WindowDataset(panel, 4, 2)
    assert len(dataset) == 7 + 3
    x, y = dataset[7]
    np.testing.assert_array_equal(x.numpy(), panel[1][:4])
    np.testing.assert_array_equal(y.numpy(), panel[1][4:6])
    assert len(WindowDataset(panel, 4, 2, stride=3)) == 3 + 1
    with pytest.raises(ValueError, match="same number of columns"):
        WindowDataset([np.zeros((10, 2)), np.zeros((10, 3))], 4, 2)
    with pytest.raises(ValueError, match=r"`series\[1\]` has 5 time steps but 6 are needed"):
        WindowDataset([np.zeros((10, 2)), np.zeros((5, 2))], 4, 2)


def test_validation_split_holds_out_the_end_without_leakage() -> None:
    series = np.arange(100.0)[:, None]
    train, validation = split_for_validation([series], 0.2, seq_len=10, pred_len=5)
    assert train[0][-1, 0] == 79.0 and len(train[0]) == 80
    assert validation[0][0, 0] == 70.0 and validation[0][-1, 0] == 99.0  # 10 steps of context
    _, targets = sliding_windows(validation[0], 10, 5)
    assert targets.min() >= 80.0  # every validation target lies after the training data
    train, validation = split_for_validation([series[:20]], 0.2, seq_len=10, pred_len=5)
    assert len(train[0]) == 15 and len(validation[0]) == 15  # exactly one window each
    train, validation = split_for_validation([series[:19]], 0.2, seq_len=10, pred_len=5)
    assert len(train[0]) == 19 and validation == []  # too short: trained whole
    with pytest.raises(ValueError, match="`validation_size`"):
        split_for_validation([series], 1.5, 10, 5)


def test_channel_scaler_round_trips_and_handles_constant_columns() -> None:
    values = np.column_stack([np.arange(10.0), np.full(10, 3.0)])
    scaler = ChannelScaler().fit(values)
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaled[:, 0].mean(), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled[:, 1], 0.0)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), values)
    with pytest.raises(RuntimeError, match="not fitted"):
        ChannelScaler().transform(values)
