"""Train/validation/test row ranges of the long-term benchmarks, and few-shot training subsets.

Symbols: T rows of a series, L lookback (``seq_len``), H horizon (``pred_len``), p few-shot percent.

Two split rules are in use (docs/method.md §6):

* **ETT** (:func:`ett_split`): 12/4/4 months of 30 days, i.e. borders 8640 / 11520 / 14400 rows for
  hourly data and four times those for 15-minute data; rows past 20 months are never used.
* **custom** (:func:`custom_split`, the Time-Series-Library rule for every other set):
  ``n_train = int(T * 0.7)``, ``n_test = int(T * 0.2)``, ``n_val = T - n_train - n_test``.

In both, each later split starts L rows earlier, so that its first window's lookback is the end of
the previous split and no target is lost. A window needs L + H rows: a range of n rows holds
:func:`n_windows` ``= n - L - H + 1`` windows (0 when negative).

Few-shot (docs/method.md §10, :func:`few_shot_split`) keeps the first p% of the training split's window
starts: the training end becomes ``(end - L) * p // 100 + L``; validation and test are unchanged.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass, replace

ETT_NAMES = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
_HOURS_PER_MONTH = 30 * 24
TRAIN_FRACTION, TEST_FRACTION = 0.7, 0.2


@dataclass(frozen=True)
class Split:
    """Row ranges ``[start, stop)`` of the train, validation and test parts of one series."""

    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]


def n_windows(n_rows: int, seq_len: int, pred_len: int) -> int:
    """Number of (L + H)-row windows at stride 1 in ``n_rows`` rows: ``n_rows - L - H + 1``, >= 0."""
    return max(0, n_rows - seq_len - pred_len + 1)


def _check_seq_len(seq_len: int) -> None:
    if seq_len < 1:
        raise ValueError(f"`seq_len` must be a positive number of rows, got {seq_len}")


def ett_split(name: str, seq_len: int) -> Split:
    """The standard 12/4/4-month split of an ETT series (hourly or 15-minute rows).

    Parameters
    ----------
    name
        One of :data:`ETT_NAMES`; ``ETTm*`` have 4 rows per hour.
    seq_len
        Lookback L: validation and test start L rows before their first target.

    Raises
    ------
    ValueError
        For an unknown ``name`` or a ``seq_len`` below 1.
    """
    if name not in ETT_NAMES:
        raise ValueError(f"`name` must be one of {ETT_NAMES}, got {name!r}")
    _check_seq_len(seq_len)
    rows_per_hour = 4 if name.startswith("ETTm") else 1
    month = _HOURS_PER_MONTH * rows_per_hour
    train_end, validation_end, test_end = 12 * month, 16 * month, 20 * month
    return Split(train=(0, train_end), validation=(train_end - seq_len, validation_end),
                 test=(validation_end - seq_len, test_end))


def custom_split(n_rows: int, seq_len: int) -> Split:
    """The Time-Series-Library 70/10/20 split of a series of ``n_rows`` rows.

    ``n_train = int(T * 0.7)``, ``n_test = int(T * 0.2)``, ``n_val = T - n_train - n_test``;
    train ``[0, n_train)``, validation ``[n_train - L, n_train + n_val)``, test
    ``[T - n_test - L, T)``.

    Raises
    ------
    ValueError
        If ``seq_len`` is below 1 or exceeds the training rows (validation would start before 0).
    """
    _check_seq_len(seq_len)
    n_train, n_test = int(n_rows * TRAIN_FRACTION), int(n_rows * TEST_FRACTION)
    n_validation = n_rows - n_train - n_test
    if seq_len > n_train:
        raise ValueError(f"`seq_len`={seq_len} exceeds the {n_train} training rows of a "
                         f"{n_rows}-row series; lower `seq_len` or use a longer series")
    return Split(train=(0, n_train), validation=(n_train - seq_len, n_train + n_validation),
                 test=(n_rows - n_test - seq_len, n_rows))


def few_shot_split(split: Split, seq_len: int, percent: int, pred_len: int | None = None) -> Split:
    """``split`` with its training part cut to the first ``percent`` % of its window starts.

    The training end ``end`` becomes ``(end - L) * percent // 100 + L`` (the training start stays);
    validation and test are unchanged. ETTh1 at L=96 and 5 % keeps 523 rows.

    Parameters
    ----------
    split
        Full split, e.g. from :func:`ett_split`.
    seq_len
        Lookback L.
    percent
        Integer percentage p in [1, 100]; 100 returns ``split`` unchanged.
    pred_len
        Horizon H; when given, the result must leave at least one training window of L + H rows.

    Raises
    ------
    ValueError
        If ``percent`` is outside [1, 100], or ``pred_len`` is given and no training window is
        left (e.g. ETTh1, L=96, 5 %, H=720: 523 rows for a 816-row window).
    """
    if isinstance(percent, bool) or not isinstance(percent, numbers.Integral) \
            or not 1 <= percent <= 100:
        raise ValueError(f"`percent` must be an integer in [1, 100], got {percent!r}")
    percent = int(percent)
    _check_seq_len(seq_len)
    start, end = split.train
    new_end = (end - seq_len) * percent // 100 + seq_len
    result = replace(split, train=(start, new_end))
    if pred_len is not None:
        rows = new_end - start
        if n_windows(rows, seq_len, pred_len) == 0:
            raise ValueError(
                f"few-shot `percent`={percent} leaves {rows} training rows, fewer than one window "
                f"of seq_len + pred_len = {seq_len + pred_len}: no training window for "
                f"`pred_len`={pred_len}; raise `percent` or lower `pred_len` (report this case as "
                f"impossible rather than padding)"
            )
    return result
