"""Preparing arrays for the network: validation, windowing, splitting and scaling (no framework
types). Benchmark files are read by :mod:`calf_forecaster.datasets`.

Symbols: T time steps of one series, M variates, L lookback (``seq_len``), H horizon
(``pred_len``), N windows. A *panel* is a sequence of (T_i, M) arrays with the same M columns.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from calf_forecaster.model import NORMALISATION_EPS

logger = logging.getLogger(__name__)


def check_values(values: object, name: str = "y") -> np.ndarray:
    """Validate one series and return it as a float64 (T, M) array.

    Parameters
    ----------
    values
        Array-like of shape (T,) or (T, M).
    name
        Name of the argument, used in error messages.

    Raises
    ------
    TypeError
        If the values are not numeric (strings, objects, booleans, datetimes).
    ValueError
        If the array has rank 0 or above 2, is empty, or holds NaN or infinite values.
    """
    array = np.asarray(values)
    if array.dtype.kind not in "iuf":
        raise TypeError(f"`{name}` must be numeric (int or float), got dtype {array.dtype}; "
                        f"convert or drop non-numeric columns first")
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"`{name}` must have rank 1 (T,) or 2 (T, M), got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"`{name}` is empty (shape {array.shape})")
    finite = np.isfinite(array)
    if not finite.all():
        rows, cols = np.nonzero(~finite)
        raise ValueError(
            f"`{name}` holds {int((~finite).sum())} NaN or infinite values (first at row "
            f"{rows[0]}, column {cols[0]}); impute or drop them before fitting or predicting"
        )
    return array.astype(np.float64, copy=False)


def check_length(array: np.ndarray, required: int, name: str = "y", what: str = "") -> None:
    """Raise ``ValueError`` if ``array`` has fewer than ``required`` time steps."""
    if array.shape[0] < required:
        raise ValueError(f"`{name}` has {array.shape[0]} time steps but {required} are needed"
                         f"{' ' + what if what else ''}; provide a longer series or lower `seq_len`")


def check_lengths(lengths: Sequence[int], required: int, names: Sequence[str], what: str,
                  fix: str) -> None:
    """Refuse a panel in which any series is shorter than ``required``, naming how many and which.

    Parameters
    ----------
    lengths
        Time steps of every series.
    required
        Steps each series needs.
    names
        A readable name of every series (e.g. ``"y"`` or ``"y (series 'a')"``).
    what
        What the steps are needed for, e.g. ``"to fit (seq_len=24 + horizon 6)"``.
    fix
        The sentence that tells the user what to do.
    """
    short = [(name, length) for name, length in zip(names, lengths) if length < required]
    if not short:
        return
    shown = ", ".join(f"{name} has {length} time points" for name, length in short[:5])
    more = f" and {len(short) - 5} more" if len(short) > 5 else ""
    count = (f"{len(short)} of {len(lengths)} series are" if len(lengths) > 1
             else "the series is")
    raise ValueError(f"{count} too short: {required} time points are needed {what}, but "
                     f"{shown}{more}. {fix}")


def warn_below_normalisation_floor(arrays: Sequence[np.ndarray], fix: str,
                                   columns: Sequence[object] | None = None) -> None:
    """Warn once if a column's spread is far below the normalisation's floor ``sqrt(1e-5)``.

    The network divides every window by ``sqrt(var + 1e-5)`` (faithful to the method), so a
    column whose standard deviation is far below 3e-3 is forecast flattened towards its window
    mean. Rescaling the data (``fix``) avoids it.
    """
    stacked = np.concatenate([np.asarray(a, np.float64) for a in arrays])
    spread = stacked.std(axis=0)  # (M,)
    tiny = np.flatnonzero((spread > 0) & (spread < 0.1 * math.sqrt(NORMALISATION_EPS)))
    if tiny.size:
        names = [str(columns[i]) if columns is not None else str(i) for i in tiny[:5]]
        warnings.warn(
            f"{tiny.size} column(s) ({', '.join(names)}) have a standard deviation as small as "
            f"{spread[tiny].min():.3g}, far below the network's normalisation floor "
            f"sqrt(1e-5) = {math.sqrt(NORMALISATION_EPS):.2g}: their forecasts would be flattened "
            f"towards the window mean. {fix}", UserWarning, stacklevel=3)


def sliding_windows(values: np.ndarray, seq_len: int, pred_len: int,
                    stride: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every (lookback, future) pair of one (T, M) series, as views where possible.

    Returns
    -------
    x, y
        Arrays (N, L, M) and (N, H, M) with ``N = (T - L - H) // stride + 1``.
    """
    check_length(values, seq_len + pred_len, what="for one window (seq_len + pred_len)")
    windows = np.lib.stride_tricks.sliding_window_view(values, seq_len + pred_len, axis=0)
    windows = windows[::stride].transpose(0, 2, 1)  # (N, L + H, M)
    return windows[:, :seq_len], windows[:, seq_len:]


class WindowDataset(Dataset):
    """All (x (L, M), y (H, M_t)) float32 windows of every series of a panel, in time order.

    Parameters
    ----------
    series
        One (T, M) array or a sequence of them, all with the same M; validated.
    seq_len, pred_len
        Lookback L and horizon H.
    stride
        Keep every ``stride``-th window start of each series.
    n_targets
        ``y`` holds the last ``n_targets`` = M_t columns (the targets; the others are
        covariates, seen in ``x`` only); ``None``: all M.
    """

    def __init__(self, series: np.ndarray | Sequence[np.ndarray], seq_len: int, pred_len: int,
                 stride: int = 1, n_targets: int | None = None) -> None:
        panel = [series] if isinstance(series, np.ndarray) else list(series)
        if not panel:
            raise ValueError("`series` is empty: give at least one (T, M) array")
        arrays = [check_values(values, f"series[{i}]") for i, values in enumerate(panel)]
        widths = {a.shape[1] for a in arrays}
        if len(widths) != 1:
            raise ValueError(f"all series of a panel need the same number of columns, got {widths}")
        for index, array in enumerate(arrays):
            check_length(array, seq_len + pred_len, f"series[{index}]",
                         "for one training window (seq_len + pred_len)")
        self.seq_len, self.pred_len, self.stride = seq_len, pred_len, stride
        self.n_targets = n_targets
        self.series = [torch.tensor(a, dtype=torch.float32) for a in arrays]  # own copies
        counts = [(len(a) - seq_len - pred_len) // stride + 1 for a in arrays]
        self.offsets = np.cumsum([0, *counts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        which = int(np.searchsorted(self.offsets, index, side="right") - 1)
        start = (index - int(self.offsets[which])) * self.stride
        window = self.series[which][start:start + self.seq_len + self.pred_len]
        future = window[self.seq_len:]
        return window[:self.seq_len], future if self.n_targets is None else \
            future[:, -self.n_targets:]


def split_for_validation(series: Sequence[np.ndarray], validation_size: float | int,
                         seq_len: int, pred_len: int
                         ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Hold out the end of every series for validation, without leaking it into training.

    ``validation_size`` is a fraction of each series' time steps (float in (0, 1)) or a number of
    steps (int). The validation part keeps ``seq_len`` steps of context before the held-out steps.
    A series too short to give both parts at least one window stays whole in training (logged).

    Returns
    -------
    train, validation
        Lists of arrays; ``validation`` is empty when no series could spare a validation window.
    """
    if isinstance(validation_size, float) and not 0.0 <= validation_size < 1.0:
        raise ValueError(f"`validation_size` must be a fraction in [0, 1) or an int number of "
                         f"steps, got {validation_size}")
    if isinstance(validation_size, int) and validation_size < 0:
        raise ValueError(f"`validation_size` must be >= 0, got {validation_size}")
    train, validation = [], []
    for values in series:
        held_out = (math.ceil(validation_size * len(values)) if isinstance(validation_size, float)
                    else validation_size)
        held_out = max(held_out, pred_len) if held_out else 0
        if held_out and len(values) - held_out >= seq_len + pred_len:
            train.append(values[:len(values) - held_out])
            validation.append(values[len(values) - held_out - seq_len:])
        else:
            if held_out:
                logger.info("series of %d steps too short for a validation split; trained whole",
                            len(values))
            train.append(values)
    return train, validation


class ChannelScaler:
    """Per-column standardisation with statistics of the data it was fitted on.

    Constant columns get a scale of 1, so they pass through shifted but not divided by zero.
    """

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, series: np.ndarray | Sequence[np.ndarray]) -> ChannelScaler:
        """Fit on one (T, M) array or all rows of a panel.

        The statistics are computed on the values divided by each column's largest magnitude,
        so that columns near float64's range (1e300) get a finite mean and scale.
        """
        stacked = np.concatenate([series] if isinstance(series, np.ndarray) else list(series))
        stacked = np.asarray(stacked, np.float64)
        peak = np.abs(stacked).max(axis=0)  # (M,)
        peak = np.where(peak > 0, peak, 1.0)
        unit = stacked / peak
        self.mean_ = unit.mean(axis=0) * peak
        scale = unit.std(axis=0) * peak
        if not (np.isfinite(self.mean_).all() and np.isfinite(scale).all()):
            raise ValueError("the column statistics overflow float64; rescale the data")
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    def _fitted(self) -> tuple[np.ndarray, np.ndarray]:
        if self.mean_ is None or self.scale_ is None:
            raise RuntimeError("ChannelScaler is not fitted; call fit first")
        return self.mean_, self.scale_

    def transform(self, values: np.ndarray) -> np.ndarray:
        """(..., M) values -> standardised values."""
        mean, scale = self._fitted()
        return (values - mean) / scale

    def inverse_transform(self, values: np.ndarray) -> np.ndarray:
        """Standardised (..., M) values -> original units."""
        mean, scale = self._fitted()
        return values * scale + mean
