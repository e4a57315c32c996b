"""Forecast accuracy metrics as plain NumPy functions (shared by examples, benchmarks, harness).

Symbols: N series (or windows), H horizon, M variates, T_i in-sample length of series i,
m seasonality.

:func:`mse`, :func:`mae` and :func:`smape` average over all elements given, so passing every test
window (N, H, M) gives the protocol's "mean over every window" numbers.

The M4 metrics (docs/method.md §9) average per series first, as the competition did:

* :func:`smape_per_series`: ``mean_h 200 |F - A| / (|F| + |A|)`` in percent, per series;
* :func:`mase_per_series`: ``mean_h |F - A|`` divided by the series' in-sample seasonal-naive MAE
  ``mean_t |y_t - y_{t-m}|`` with the group's seasonality m;
* :func:`owa`: ``0.5 * (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2)`` of group means;
* :func:`m4_scores` gathers one group's numbers, :func:`m4_weighted_average` combines groups with
  weights proportional to their series counts (the competition's "Total" row; its OWA comes from
  the averaged sMAPE and MASE, not from averaging the groups' OWAs).

Edge cases, chosen explicitly:

* sMAPE: a term with ``F = A = 0`` is 0 (a perfect forecast), not 0/0; M4 itself holds no zeros.
* MASE: a series whose in-sample seasonal differences are all 0 (scale 0) has no MASE and raises
  ``ValueError`` naming it, as does one with no more than m in-sample points; nothing is skipped
  silently.
* Non-finite forecasts raise ``ValueError`` naming the series.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

SeriesCollection = Mapping[str, np.ndarray] | Sequence[np.ndarray] | np.ndarray


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


def _smape_terms(forecast: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """``200 |f - a| / (|f| + |a|)`` elementwise, 0 where ``f = a = 0``."""
    denominator = np.abs(forecast) + np.abs(actual)
    numerator = 200.0 * np.abs(forecast - actual)
    return np.divide(numerator, denominator, out=np.zeros_like(numerator),
                     where=denominator != 0)


def smape(forecast: np.ndarray, actual: np.ndarray) -> float:
    """Symmetric MAPE in percent, as in the M4 competition: ``200 |f - a| / (|f| + |a|)``.

    Terms with ``f = a = 0`` count as 0.
    """
    forecast, actual = _pair(forecast, actual)
    return float(np.mean(_smape_terms(forecast, actual)))


def _seasonal_scale(insample: np.ndarray, seasonality: int, name: str = "`insample`") -> float:
    """In-sample seasonal-naive MAE ``mean |y_t - y_{t-m}|``; raises when undefined or 0."""
    insample = np.asarray(insample, np.float64)
    if seasonality < 1:
        raise ValueError(f"`seasonality` must be at least 1, got {seasonality}")
    if len(insample) <= seasonality:
        raise ValueError(f"{name} needs more than {seasonality} values for MASE, "
                         f"got {len(insample)}")
    scale = float(np.mean(np.abs(insample[seasonality:] - insample[:-seasonality])))
    if not scale > 0:
        raise ValueError(f"{name} has an in-sample seasonal-naive MAE of {scale} (it repeats "
                         f"exactly at lag {seasonality}), so MASE is undefined; drop the series "
                         f"or score it with sMAPE only")
    return scale


def mase(forecast: np.ndarray, actual: np.ndarray, insample: np.ndarray, seasonality: int) -> float:
    """Mean absolute scaled error of one series against its in-sample seasonal naive error.

    Raises
    ------
    ValueError
        If ``insample`` has no more than ``seasonality`` values or its seasonal-naive MAE is 0.
    """
    forecast, actual = _pair(forecast, actual)
    return float(np.mean(np.abs(forecast - actual)) / _seasonal_scale(insample, seasonality))


def _aligned(*collections: SeriesCollection) -> tuple[list[str], list[list[np.ndarray]]]:
    """Series ids and, per collection, the series in one order (mappings are matched by id)."""
    mappings = [isinstance(c, Mapping) for c in collections]
    if all(mappings):
        ids = list(collections[0])
        for other in collections[1:]:
            if set(other) != set(ids):
                missing, extra = sorted(set(ids) - set(other)), sorted(set(other) - set(ids))
                raise ValueError(f"series ids differ between the inputs (missing {missing[:5]}, "
                                 f"extra {extra[:5]}); give every input the same series")
        return ids, [[np.asarray(c[key], np.float64) for key in ids] for c in collections]
    if any(mappings):
        raise TypeError("give either all inputs as {id: series} mappings or none of them")
    rows = [[np.asarray(series, np.float64) for series in c] for c in collections]
    counts = {len(r) for r in rows}
    if len(counts) != 1:
        raise ValueError(f"the inputs hold different numbers of series: {[len(r) for r in rows]}")
    return [str(i) for i in range(len(rows[0]))], rows


def _check_pairs(ids: list[str], forecasts: list[np.ndarray], actuals: list[np.ndarray]) -> None:
    if not ids:
        raise ValueError("no series given")
    for key, forecast, actual in zip(ids, forecasts, actuals):
        if forecast.shape != actual.shape or forecast.ndim != 1:
            raise ValueError(f"series {key!r}: forecast shape {forecast.shape} and actual shape "
                             f"{actual.shape} must be the same (H,)")
        if not np.isfinite(forecast).all():
            raise ValueError(f"series {key!r}: the forecast holds NaN or infinite values")


def smape_per_series(forecasts: SeriesCollection, actuals: SeriesCollection) -> np.ndarray:
    """sMAPE in percent of every series, shape (N,).

    Parameters
    ----------
    forecasts, actuals
        ``{id: (H,)}`` mappings (matched by id) or sequences / (N, H) arrays in the same order.
    """
    ids, (forecasts, actuals) = _aligned(forecasts, actuals)
    _check_pairs(ids, forecasts, actuals)
    return np.array([np.mean(_smape_terms(f, a)) for f, a in zip(forecasts, actuals)])


def mase_per_series(forecasts: SeriesCollection, actuals: SeriesCollection,
                    insamples: SeriesCollection, seasonality: int) -> np.ndarray:
    """MASE of every series, shape (N,), each scaled by its own in-sample seasonal-naive MAE.

    Parameters
    ----------
    forecasts, actuals
        ``{id: (H,)}`` or sequences in the same order.
    insamples
        The training series ``{id: (T_i,)}`` or a sequence of them.
    seasonality
        The group's m (M4: Yearly 1, Quarterly 4, Monthly 12, Weekly 1, Daily 1, Hourly 24).

    Raises
    ------
    ValueError
        If a series' in-sample scale is undefined or 0 (see the module docstring).
    """
    ids, (forecasts, actuals, insamples) = _aligned(forecasts, actuals, insamples)
    _check_pairs(ids, forecasts, actuals)
    return np.array([
        np.mean(np.abs(f - a)) / _seasonal_scale(x, seasonality, f"series {key!r}")
        for key, f, a, x in zip(ids, forecasts, actuals, insamples)
    ])


def owa(smape_value: float, mase_value: float, naive2_smape: float, naive2_mase: float) -> float:
    """Overall weighted average: ``0.5 * (sMAPE / sMAPE_Naive2 + MASE / MASE_Naive2)``.

    Raises
    ------
    ValueError
        If a Naive2 value is not positive.
    """
    if not (naive2_smape > 0 and naive2_mase > 0):
        raise ValueError(f"Naive2 sMAPE and MASE must be positive, got {naive2_smape} and "
                         f"{naive2_mase}")
    return 0.5 * (smape_value / naive2_smape + mase_value / naive2_mase)


@dataclass(frozen=True)
class M4Scores:
    """Group-mean sMAPE and MASE of a model and of Naive2 on the same series."""

    smape: float  # mean over series, percent
    mase: float  # mean over series
    naive2_smape: float  # the same for the Naive2 forecasts
    naive2_mase: float
    n_series: int  # N, the weight in m4_weighted_average

    @property
    def owa(self) -> float:
        """OWA against Naive2, see :func:`owa`."""
        return owa(self.smape, self.mase, self.naive2_smape, self.naive2_mase)


def m4_scores(forecasts: SeriesCollection, actuals: SeriesCollection, insamples: SeriesCollection,
              naive2: SeriesCollection, seasonality: int) -> M4Scores:
    """sMAPE, MASE and OWA of one M4 group.

    Parameters
    ----------
    forecasts, actuals, naive2
        The model's forecasts, the official test values and the official Naive2 forecasts,
        ``{id: (H,)}`` (matched by id) or sequences in one order.
    insamples
        The training series, for the MASE scales.
    seasonality
        The group's m.
    """
    ids, (forecasts, actuals, insamples, naive2) = _aligned(forecasts, actuals, insamples, naive2)
    return M4Scores(
        smape=float(np.mean(smape_per_series(forecasts, actuals))),
        mase=float(np.mean(mase_per_series(forecasts, actuals, insamples, seasonality))),
        naive2_smape=float(np.mean(smape_per_series(naive2, actuals))),
        naive2_mase=float(np.mean(mase_per_series(naive2, actuals, insamples, seasonality))),
        n_series=len(ids),
    )


def m4_weighted_average(scores: Mapping[str, M4Scores] | Iterable[M4Scores]) -> M4Scores:
    """Combine groups with weights proportional to their series counts.

    sMAPE, MASE and the Naive2 values are averaged with weights ``n_series``; the result's
    :attr:`M4Scores.owa` is then computed from those averages, as the competition's total is.

    Raises
    ------
    ValueError
        If no group is given.
    """
    groups = list(scores.values()) if isinstance(scores, Mapping) else list(scores)
    if not groups:
        raise ValueError("`scores` is empty: give at least one group's M4Scores")
    weights = np.array([g.n_series for g in groups], np.float64)

    def average(field: str) -> float:
        return float(np.average([getattr(g, field) for g in groups], weights=weights))

    return M4Scores(smape=average("smape"), mase=average("mase"),
                    naive2_smape=average("naive2_smape"), naive2_mase=average("naive2_mase"),
                    n_series=int(weights.sum()))
