"""Forecast accuracy metrics as plain NumPy functions (shared by examples, benchmarks, harness).

Every function averages over all elements given, so passing every test window (N, H, M) gives the
protocol's "mean over every window" numbers.
"""

from __future__ import annotations

import numpy as np


def _pair(forecast: np.ndarray, actual: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    forecast, actual = np.asarray(forecast, np.float64), np.asarray(actual, np.float64)
    if forecast.shape != actual.shape:
        raise ValueError(f"forecast shape {forecast.shape} != actual shape {actual.shape}")
    return forecast, actual


def mse(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Mean squared error."""
    forecast, actual = _pair(forecast, actual)
    return float(np.mean((forecast - actual) ** 2))


def mae(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Mean absolute error."""
    forecast, actual = _pair(forecast, actual)
    return float(np.mean(np.abs(forecast - actual)))


def smape(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Symmetric MAPE in percent, as in the M4 competition: ``200 |f - a| / (|f| + |a|)``."""
    forecast, actual = _pair(forecast, actual)
    return float(np.mean(200.0 * np.abs(forecast - actual) / (np.abs(forecast) + np.abs(actual))))


def mase(forecast: np.ndarray, actual: np.ndarray, insample: np.ndarray, seasonality: int) -> float:
    """Mean absolute scaled error of one series against its in-sample seasonal naive error."""
    forecast, actual = _pair(forecast, actual)
    insample = np.asarray(insample, np.float64)
    if len(insample) <= seasonality:
        raise ValueError(f"`insample` needs more than {seasonality} values for MASE")
    scale = np.mean(np.abs(insample[seasonality:] - insample[:-seasonality]))
    return float(np.mean(np.abs(forecast - actual)) / scale)
