"""The M4 short-term benchmark (docs/method.md §9): files, groups, the training sampler, validation and test.

Symbols: T length of one series, H horizon (``pred_len``), L lookback (``seq_len`` = 2H),
N series of a group, m seasonality (for MASE), c cut point.

| group | H | m | history_size | series |
|---|---|---|---|---|
| Yearly | 6 | 1 | 1.5 | 23,000 |
| Quarterly | 8 | 4 | 1.5 | 24,000 |
| Monthly | 18 | 12 | 1.5 | 48,000 |
| Weekly | 13 | 1 | 10 | 359 |
| Daily | 14 | 1 | 10 | 4,227 |
| Hourly | 48 | 24 | 10 | 414 |

**Files.** ``m4/<Group>-train.csv`` and ``m4/<Group>-test.csv`` in a data folder, as published in
the Mcompetitions/M4-methods repository (``Dataset/Train``, ``Dataset/Test``): wide CSV, header
``V1,V2,...``, column ``V1`` the id (``H1``, ``H2``, ...), then the values, the row padded with
empty cells to the longest series. The official Naive2 forecasts exist only inside
``Point Forecasts/submission-Naive2.rar`` of that repository (no direct download: a RAR archive is
beyond the standard library). ``m4/<Group>-naive2.csv`` is the header line ``id,F1,...,F48`` of the
extracted ``submission-Naive2.csv`` followed by its rows whose id starts with the group's letter
(``H*`` for Hourly, the shared ``Hourly-naive2.csv``); the full ``m4/submission-Naive2.csv`` is
accepted as well and filtered the same way.

**Training sampler** (the Time-Series-Library convention). One item per series per epoch: for a
series of length T a cut point c is drawn uniformly from the integers ``[low, T)`` with
``low = max(1, T - int(history_size * H))`` (``int`` truncates: Hourly 480, Monthly 27), so the
target always starts inside the series and the lookback holds at least one value. The lookback is
``series[max(0, c - L):c]`` placed at the right of L zeros (mask 1 on the values, 0 on the left
padding); the target is ``series[c:c + H]`` placed at the left of H zeros (mask 0 past the end).

**Validation** (not the reference's, which scores against the test file): :func:`m4_holdout` cuts
the last H points off every training series as validation targets; train on the rest.

**Test**: :func:`m4_last_windows` gives the last L points of every full training series, the inputs
whose H-step forecasts are scored against the test file.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset

from calf_forecaster.datasets._files import find_data_file

logger = logging.getLogger(__name__)

M4_URL = "https://raw.githubusercontent.com/Mcompetitions/M4-methods/master/Dataset/{folder}/{file}"
M4_NAIVE2_ARCHIVE_URL = ("https://github.com/Mcompetitions/M4-methods/raw/master/"
                         "Point%20Forecasts/submission-Naive2.rar")
_MISSING = ("", "NA", "NaN", "nan")  # padding cells of the wide files


@dataclass(frozen=True)
class M4Group:
    """One M4 frequency group and its protocol constants."""

    name: str  # "Yearly", ..., "Hourly"; its series ids start with name[0]
    horizon: int  # H
    seasonality: int  # m of the in-sample seasonal-naive scale of MASE
    history_size: float  # cut points lie in the last int(history_size * H) points
    n_series: int  # N in the official data set
    train_sha256: str | None = None  # of <Group>-train.csv; None: not hashed here
    test_sha256: str | None = None  # of <Group>-test.csv
    naive2_sha256: str | None = None  # of the per-group <Group>-naive2.csv described above

    @property
    def lookback(self) -> int:
        """Lookback L = 2H."""
        return 2 * self.horizon

    @property
    def id_prefix(self) -> str:
        """First letter of the group's series ids (``"H"`` for Hourly)."""
        return self.name[0]

    @property
    def window_limit(self) -> int:
        """``int(history_size * H)``: how many final points the cut point is drawn from."""
        return int(self.history_size * self.horizon)

    def relative_path(self, subset: Literal["train", "test", "naive2"]) -> str:
        """Path of one of the group's files inside a data folder, e.g. ``m4/Hourly-train.csv``."""
        return f"m4/{self.name}-{subset}.csv"

    def url(self, subset: Literal["train", "test"]) -> str:
        """Canonical download URL of the group's train or test file."""
        folder = {"train": "Train", "test": "Test"}[subset]
        return M4_URL.format(folder=folder, file=f"{self.name}-{subset}.csv")


M4_GROUPS: dict[str, M4Group] = {group.name: group for group in (
    M4Group("Yearly", 6, 1, 1.5, 23000),
    M4Group("Quarterly", 8, 4, 1.5, 24000),
    M4Group("Monthly", 18, 12, 1.5, 48000),
    M4Group("Weekly", 13, 1, 10.0, 359),
    M4Group("Daily", 14, 1, 10.0, 4227),
    M4Group("Hourly", 48, 24, 10.0, 414,
            train_sha256="ea59b7783573c49077a835ab6465c7d66f1474783360f310988a9a737fbca62f",
            test_sha256="71a57fccb15e534d973626ada4fb87febf789e9317715b7cc6dd3b5f90db6f42",
            naive2_sha256="6f3992db1dccfcccc44ba5ab4a5bf306a0823cc527e758fc2aa7f2ab5d58d6b8"),
)}


def m4_group(name: str | M4Group) -> M4Group:
    """The :class:`M4Group` called ``name`` (any case), or ``name`` itself if it is one.

    Raises
    ------
    ValueError
        For an unknown group name.
    """
    if isinstance(name, M4Group):
        return name
    for group in M4_GROUPS.values():
        if group.name.lower() == str(name).lower():
            return group
    raise ValueError(f"`group` must be one of {tuple(M4_GROUPS)}, got {name!r}")


def read_m4_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Read an M4 wide CSV (``V1,V2,...`` or ``id,F1,...``) into ``{id: (T_i,) float64}``.

    Rows keep the file's order; trailing empty (or ``NA``) cells are padding and dropped.

    Raises
    ------
    ValueError
        If the header does not start with ``V1`` or ``id``, a row has no value, a gap sits between
        values or an id repeats.
    """
    series: dict[str, np.ndarray] = {}
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if not header or header[0] not in ("V1", "id"):
            raise ValueError(f"{path}: not an M4 wide CSV (header starts {header[:2]!r}, "
                             f"expected 'V1' or 'id')")
        for line, row in enumerate(reader, start=2):
            key, cells = row[0], row[1:]
            while cells and cells[-1].strip() in _MISSING:
                cells.pop()
            if not cells:
                raise ValueError(f"{path}, line {line}: series {key!r} has no values")
            if key in series:
                raise ValueError(f"{path}, line {line}: series id {key!r} repeats")
            try:
                series[key] = np.array(cells, dtype=np.float64)  # (T_i,)
            except ValueError as error:
                raise ValueError(f"{path}, line {line}: series {key!r} has a missing or "
                                 f"non-numeric value inside it ({error})") from error
    return series


def load_m4(group: str | M4Group, subset: Literal["train", "test"] = "train",
            data_dir: str | Path | None = None, download: bool = True) -> dict[str, np.ndarray]:
    """One M4 group's training or test series, ``{id: (T_i,) float64}`` in file order.

    Parameters
    ----------
    group
        Group name (``"Hourly"``) or :class:`M4Group`.
    subset
        ``"train"`` (the history) or ``"test"`` (the H official future values per series).
    data_dir, download
        Where to look first, and whether to download the canonical file otherwise (see
        :func:`calf_forecaster.paths.data_search_path`).

    Raises
    ------
    ValueError
        For an unknown group or subset, or a test series without exactly H values.
    FileNotFoundError
        If the file is nowhere local and the download is off or fails; says how to fix it.
    """
    group = m4_group(group)
    if subset not in ("train", "test"):
        raise ValueError(f"`subset` must be 'train' or 'test', got {subset!r}")
    sha256 = group.train_sha256 if subset == "train" else group.test_sha256
    path = find_data_file(group.relative_path(subset), group.url(subset), sha256,
                          data_dir=data_dir, download=download)
    series = read_m4_csv(path)
    if subset == "test":
        _check_horizon(series, group, path)
    return series


def load_m4_naive2(group: str | M4Group,
                   data_dir: str | Path | None = None) -> dict[str, np.ndarray]:
    """The official Naive2 forecasts of one group, ``{id: (H,) float64}`` in file order.

    Read from ``m4/<Group>-naive2.csv`` or, failing that, the full ``m4/submission-Naive2.csv``
    (rows filtered by the group's id letter); neither can be downloaded directly.

    Raises
    ------
    FileNotFoundError
        If neither file is found; says where to get it.
    ValueError
        If a forecast does not have exactly H values.
    """
    group = m4_group(group)
    how_to_get = (f"the official forecasts ship only as {M4_NAIVE2_ARCHIVE_URL}: extract "
                  f"submission-Naive2.csv into <folder>/m4/ (it is read directly), or keep its "
                  f"header and the rows starting with {group.id_prefix!r} as "
                  f"<folder>/{group.relative_path('naive2')}")
    path = find_data_file(group.relative_path("naive2"), None, None, data_dir=data_dir,
                          download=False, how_to_get=how_to_get,
                          aliases=("m4/submission-Naive2.csv", "submission-Naive2.csv"))
    forecasts = {key: values for key, values in read_m4_csv(path).items()
                 if key.startswith(group.id_prefix)}
    _check_horizon(forecasts, group, path)
    return forecasts


def _check_horizon(series: Mapping[str, np.ndarray], group: M4Group, path: Path) -> None:
    if not series:
        raise ValueError(f"{path} holds no series of group {group.name}")
    for key, values in series.items():
        if len(values) != group.horizon:
            raise ValueError(f"{path}: series {key!r} has {len(values)} values, group "
                             f"{group.name} needs exactly H={group.horizon}")


def cut_point_range(length: int, pred_len: int, history_size: float) -> tuple[int, int]:
    """``[low, high)`` of the sampler's cut points for a series of ``length`` points.

    ``low = max(1, length - int(history_size * pred_len))`` and ``high = length``.

    Raises
    ------
    ValueError
        If ``length`` < 2 (no cut leaves both a lookback and a target value) or ``pred_len`` < 1.
    """
    if pred_len < 1:
        raise ValueError(f"`pred_len` must be at least 1, got {pred_len}")
    if length < 2:
        raise ValueError(f"a series of {length} point(s) has no cut point; every training "
                         f"series needs at least 2 points (drop shorter ones)")
    return max(1, length - int(history_size * pred_len)), length


def m4_window(series: np.ndarray, cut: int, seq_len: int,
              pred_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Lookback and target around cut point ``cut`` of one series, zero-padded, with masks.

    Parameters
    ----------
    series
        One (T,) series.
    cut
        Index of the first target point, in ``[0, T]`` (T: no target, as for test inputs).
    seq_len, pred_len
        Lookback L and horizon H.

    Returns
    -------
    x, y, x_mask, y_mask
        float32 arrays (L,), (H,), (L,), (H,): ``x`` left-padded, ``y`` right-padded with zeros;
        masks 1 on real values, 0 on padding.

    Raises
    ------
    ValueError
        If ``cut`` is outside ``[0, T]``.
    """
    series = np.asarray(series, dtype=np.float64)
    if not 0 <= cut <= len(series):
        raise ValueError(f"`cut`={cut} must lie in [0, {len(series)}] for a series of "
                         f"{len(series)} points")
    x, x_mask = np.zeros(seq_len, np.float32), np.zeros(seq_len, np.float32)  # (L,)
    y, y_mask = np.zeros(pred_len, np.float32), np.zeros(pred_len, np.float32)  # (H,)
    history = series[max(0, cut - seq_len):cut]
    if len(history):
        x[-len(history):], x_mask[-len(history):] = history, 1.0
    future = series[cut:cut + pred_len]
    y[:len(future)], y_mask[:len(future)] = future, 1.0
    return x, y, x_mask, y_mask


def _as_list(series: Mapping[str, np.ndarray] | Sequence[np.ndarray]) -> tuple[list[str], list]:
    if isinstance(series, Mapping):
        return list(series), [np.asarray(v, np.float64) for v in series.values()]
    arrays = [np.asarray(v, np.float64) for v in series]
    return [str(i) for i in range(len(arrays))], arrays


class M4TrainingDataset(Dataset):
    """One random (lookback, target) window per series per epoch, as in docs/method.md §9.

    Parameters
    ----------
    series
        ``{id: (T_i,)}`` (e.g. from :func:`load_m4` or :func:`m4_holdout`) or a sequence of (T_i,).
    pred_len
        Horizon H.
    seq_len
        Lookback L; default 2H.
    history_size
        Cut points are drawn from the last ``int(history_size * H)`` points (see
        :func:`cut_point_range`).
    seed
        Seed of the :class:`numpy.random.Generator` that draws the cut points. Each item access
        draws anew, so successive epochs differ and the whole sequence is reproducible. In a
        DataLoader worker the generator is re-seeded from ``(seed, worker seed)``, which torch
        derives from its own seeded generator for every epoch.

    Items are ``(x (L, 1), y (H, 1), x_mask (L, 1), y_mask (H, 1))`` float32 tensors.

    Raises
    ------
    ValueError
        If ``series`` is empty or a series has fewer than 2 points.
    """

    def __init__(self, series: Mapping[str, np.ndarray] | Sequence[np.ndarray], pred_len: int,
                 seq_len: int | None = None, history_size: float = 1.5, seed: int = 0) -> None:
        self.ids, self.series = _as_list(series)
        if not self.series:
            raise ValueError("`series` is empty: give at least one training series")
        self.pred_len = pred_len
        self.seq_len = 2 * pred_len if seq_len is None else seq_len
        self.history_size = history_size
        self.seed = seed
        self.ranges = []
        for key, values in zip(self.ids, self.series):
            if values.ndim != 1:
                raise ValueError(f"series {key!r} must be 1-D (T,), got shape {values.shape}")
            try:
                self.ranges.append(cut_point_range(len(values), pred_len, history_size))
            except ValueError as error:
                raise ValueError(f"series {key!r}: {error}") from error
        self._rng = np.random.default_rng(seed)
        self._worker_seed: int | None = None

    @classmethod
    def for_group(cls, group: str | M4Group,
                  series: Mapping[str, np.ndarray] | Sequence[np.ndarray],
                  seed: int = 0) -> M4TrainingDataset:
        """The sampler with the group's H, L = 2H and history_size."""
        group = m4_group(group)
        return cls(series, group.horizon, group.lookback, group.history_size, seed)

    def _generator(self) -> np.random.Generator:
        info = torch.utils.data.get_worker_info()
        if info is not None and info.seed != self._worker_seed:
            self._worker_seed = info.seed
            self._rng = np.random.default_rng([self.seed, info.seed % 2**63])
        return self._rng

    def __len__(self) -> int:
        return len(self.series)

    def draw_cut(self, index: int) -> int:
        """Draw the next cut point of series ``index`` (what ``self[index]`` uses)."""
        low, high = self.ranges[index]
        return int(self._generator().integers(low, high))

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        cut = self.draw_cut(index)
        window = m4_window(self.series[index], cut, self.seq_len, self.pred_len)
        return tuple(torch.from_numpy(part)[:, None] for part in window)


def m4_holdout(series: Mapping[str, np.ndarray],
               pred_len: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Held-out validation: the last H points of each training series become its targets.

    Returns
    -------
    train, targets
        ``{id: (T_i - H,)}`` to train on and ``{id: (H,)}`` to validate against, in the same order.

    Raises
    ------
    ValueError
        If a series has no more than H points.
    """
    train, targets = {}, {}
    for key, values in series.items():
        values = np.asarray(values, np.float64)
        if len(values) <= pred_len:
            raise ValueError(f"series {key!r} has {len(values)} points, not more than "
                             f"`pred_len`={pred_len}: nothing would be left to train on")
        train[key], targets[key] = values[:-pred_len], values[-pred_len:]
    return train, targets


def m4_last_windows(series: Mapping[str, np.ndarray] | Sequence[np.ndarray],
                    seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last L points of every series, left-padded with zeros: the test (or validation) inputs.

    Returns
    -------
    x, x_mask
        float32 arrays (N, L, 1); the mask is 0 on the padding of series shorter than L.
    """
    _, arrays = _as_list(series)
    x = np.zeros((len(arrays), seq_len, 1), np.float32)  # (N, L, 1)
    mask = np.zeros_like(x)
    for row, values in enumerate(arrays):
        window, _, window_mask, _ = m4_window(values, len(values), seq_len, 1)
        x[row, :, 0], mask[row, :, 0] = window, window_mask
    return x, mask
