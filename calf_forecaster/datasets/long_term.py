"""The long-term forecasting benchmarks: where each file lives, how it is split, its reference recipe.

Symbols: T rows, M variates, L lookback (``seq_len``), H horizon (``pred_len``).

| name | file (in a data folder) | T x M | split | L | H | batch | loss | lr |
|---|---|---|---|---|---|---|---|---|
| ETTh1, ETTh2 | ett/ETTh*.csv | 17420 x 7 | ETT 12/4/4 months | 96 | 96/192/336/720 | 256 | L1 | 5e-4 |
| ETTm1, ETTm2 | ett/ETTm*.csv | 69680 x 7 | ETT, 4 rows/hour | 96 | same | 256 | L1 | 5e-4 (ETTm2 1e-4) |
| Weather | weather/weather.csv | 52696 x 21 | custom 70/10/20 | 96 | same | 64 | smooth_l1 | 5e-4 |
| ECL | electricity/electricity.csv | 26304 x 321 | custom | 96 | same | 32 | smooth_l1 | 5e-4 |
| Traffic | traffic/traffic.csv | 17544 x 862 | custom | 96 | same | 8 | smooth_l1 | 5e-4 |
| Exchange | exchange_rate/exchange_rate.csv | 7588 x 8 | custom | 96 | same | 32* | L1* | 5e-4 |
| ILI | ili/national_illness.csv | 966 x 7 | custom | 36 or 104 | 24/36/48/60 | 16* | L1* | 5e-4 |

Batch sizes, losses and learning rates are the reference recipe of docs/method.md §4. (*) The reference has no
recipe for Exchange and ILI; ours treats them like ETT (few variates, few rows: L1 loss) with
batches that keep a comparable number of steps per epoch (Exchange ~5,200 training windows,
ILI ~600). Early-stopping patience is 10 for ETTh1 and 5 for the others (docs/method.md §4).

Downloads: ETT comes from its authors' repository (zhouhaoyi/ETDataset). The other sets were first
published by the Autoformer authors on a Google Drive without stable direct links; the URLs below
are the Time-Series-Library maintainers' copy on Hugging Face (``thuml/Time-Series-Library``), a
mirror in the same layout (``date`` first, target ``OT`` last). SHA-256 is recorded for the files
hashed here (ETT, ILI); the others are ``None`` and a download of them is accepted with a warning.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from calf_forecaster.datasets._files import find_data_file
from calf_forecaster.datasets.splits import ETT_NAMES, Split, custom_split, ett_split
from calf_forecaster.datasets.table import TimeSeriesTable, read_csv_table

logger = logging.getLogger(__name__)

ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{name}.csv"
#: The Time-Series-Library maintainers' Hugging Face copy of the Autoformer benchmark files (mirror).
TSL_MIRROR_URL = "https://huggingface.co/datasets/thuml/Time-Series-Library/resolve/main/{path}"
ETT_SHA256 = {
    "ETTh1": "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
    "ETTh2": "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
    "ETTm1": "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e",
    "ETTm2": "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd",
}
#: Hashed from shared/data/ili/national_illness.csv (matches its SHA256SUMS).
ILI_SHA256 = "8594cecb98c6f2f9dc014eca11c4d5d1e38ad5ce6ed0592d4abe65b146fce395"
LONG_HORIZONS = (96, 192, 336, 720)
ILI_HORIZONS = (24, 36, 48, 60)


@dataclass(frozen=True)
class LongTermDataset:
    """One long-term benchmark: its file, split rule and reference training recipe."""

    name: str  # canonical name, e.g. "ETTh1", "ECL"
    relative_path: str  # path inside a data folder, e.g. "ett/ETTh1.csv"
    url: str  # canonical download URL (see the module docstring for mirrors)
    sha256: str | None  # hex SHA-256 of the file; None: not hashed here, downloads unverified
    split_rule: Literal["ett", "custom"]  # ett_split (12/4/4 months) or custom_split (70/10/20)
    seq_lens: tuple[int, ...]  # standard lookbacks L; the first is the default
    pred_lens: tuple[int, ...]  # standard horizons H
    batch_size: int  # reference training batch size
    loss: Literal["l1", "smooth_l1"]  # reference supervised loss
    learning_rate: float  # reference learning rate of the main parameter group
    patience: int  # early-stopping patience in epochs
    n_rows: int  # rows T of the canonical file (a different count only logs a warning)
    n_columns: int  # value columns M (target "OT" last)
    freq: str  # sampling interval, as a pandas-style alias
    aliases: tuple[str, ...] = ()  # other relative paths of the same file (Time-Series-Library)

    @property
    def seq_len(self) -> int:
        """The default lookback L, ``seq_lens[0]``."""
        return self.seq_lens[0]

    def split(self, seq_len: int | None = None, n_rows: int | None = None) -> Split:
        """Row ranges for lookback ``seq_len`` (default :attr:`seq_len`), see :func:`long_term_split`."""
        return long_term_split(self.name, self.n_rows if n_rows is None else n_rows,
                               self.seq_len if seq_len is None else seq_len)


def _ett(name: str) -> LongTermDataset:
    minute = name.startswith("ETTm")
    return LongTermDataset(
        name=name, relative_path=f"ett/{name}.csv", url=ETT_URL.format(name=name),
        sha256=ETT_SHA256[name], split_rule="ett", seq_lens=(96,), pred_lens=LONG_HORIZONS,
        batch_size=256, loss="l1", learning_rate=1e-4 if name == "ETTm2" else 5e-4,
        patience=10 if name == "ETTh1" else 5, n_rows=69680 if minute else 17420, n_columns=7,
        freq="15min" if minute else "h", aliases=(f"ETT-small/{name}.csv",))


def _custom(name: str, relative_path: str, mirror_path: str, **recipe: object) -> LongTermDataset:
    settings: dict = {"sha256": None, "seq_lens": (96,), "pred_lens": LONG_HORIZONS,
                      "learning_rate": 5e-4, "patience": 5}
    settings.update(recipe)
    aliases = () if mirror_path == relative_path else (mirror_path,)
    return LongTermDataset(name=name, relative_path=relative_path,
                           url=TSL_MIRROR_URL.format(path=mirror_path), split_rule="custom",
                           aliases=aliases, **settings)


LONG_TERM_DATASETS: dict[str, LongTermDataset] = {
    **{name: _ett(name) for name in ETT_NAMES},
    "Weather": _custom("Weather", "weather/weather.csv", "weather/weather.csv", batch_size=64,
                       loss="smooth_l1", n_rows=52696, n_columns=21, freq="10min"),
    "ECL": _custom("ECL", "electricity/electricity.csv", "electricity/electricity.csv",
                   batch_size=32, loss="smooth_l1", n_rows=26304, n_columns=321, freq="h"),
    "Traffic": _custom("Traffic", "traffic/traffic.csv", "traffic/traffic.csv", batch_size=8,
                       loss="smooth_l1", n_rows=17544, n_columns=862, freq="h"),
    "Exchange": _custom("Exchange", "exchange_rate/exchange_rate.csv",
                        "exchange_rate/exchange_rate.csv", batch_size=32, loss="l1", n_rows=7588,
                        n_columns=8, freq="D"),
    "ILI": _custom("ILI", "ili/national_illness.csv", "illness/national_illness.csv",
                   sha256=ILI_SHA256, seq_lens=(36, 104), pred_lens=ILI_HORIZONS, batch_size=16,
                   loss="l1", n_rows=966, n_columns=7, freq="W"),
}
LONG_TERM_NAMES = tuple(LONG_TERM_DATASETS)


def long_term_dataset(name: str) -> LongTermDataset:
    """The registry entry for ``name``: a canonical name or, in any case, the file's stem.

    ``"ECL"``, ``"electricity"``, ``"Exchange"``, ``"exchange_rate"``, ``"ili"`` and
    ``"national_illness"`` all work.

    Raises
    ------
    ValueError
        For an unknown ``name``; the message lists the known ones.
    """
    wanted = name.lower()
    for entry in LONG_TERM_DATASETS.values():
        if wanted in (entry.name.lower(), Path(entry.relative_path).stem.lower()):
            return entry
    raise ValueError(f"`name` must be one of {LONG_TERM_NAMES} (or a file stem such as "
                     f"'electricity'), got {name!r}")


def long_term_split(name: str, n_rows: int, seq_len: int) -> Split:
    """Train/validation/test row ranges of benchmark ``name`` with ``n_rows`` rows and lookback L.

    ETT sets follow :func:`~calf_forecaster.datasets.splits.ett_split` (fixed borders, rows past
    20 months unused), the others :func:`~calf_forecaster.datasets.splits.custom_split`.

    Raises
    ------
    ValueError
        For an unknown ``name``, or an ETT series shorter than its fixed test end.
    """
    entry = long_term_dataset(name)
    if entry.split_rule == "custom":
        return custom_split(n_rows, seq_len)
    split = ett_split(entry.name, seq_len)
    if n_rows < split.test[1]:
        raise ValueError(f"`n_rows`={n_rows} is shorter than the {entry.name} test end "
                         f"{split.test[1]}; the ETT split needs the full 20 months of rows")
    return split


def find_long_term_file(name: str, data_dir: str | Path | None = None,
                        download: bool = True) -> Path:
    """Path of benchmark ``name``'s CSV: from a data folder or a (verified) download.

    See :func:`calf_forecaster.paths.data_search_path` for the folders searched.

    Raises
    ------
    ValueError
        For an unknown ``name``.
    FileNotFoundError
        If the file is nowhere local and the download is off or fails; says how to fix it.
    """
    entry = long_term_dataset(name)
    return find_data_file(entry.relative_path, entry.url, entry.sha256, data_dir=data_dir,
                          download=download, aliases=entry.aliases)


def load_long_term(name: str, data_dir: str | Path | None = None,
                   download: bool = True) -> TimeSeriesTable:
    """One long-term benchmark as a :class:`TimeSeriesTable` (``date`` column, target ``OT`` last).

    A row or column count other than the registry's logs a warning (the split still follows the
    rows read).

    Raises
    ------
    ValueError
        For an unknown ``name`` or an unreadable file.
    FileNotFoundError
        See :func:`find_long_term_file`.
    """
    entry = long_term_dataset(name)
    path = find_long_term_file(entry.name, data_dir, download)
    table = read_csv_table(path)
    if table.values.shape != (entry.n_rows, entry.n_columns):
        logger.warning("%s at %s has shape %s, the benchmark file has (%d, %d); is it another "
                       "version?", entry.name, path, table.values.shape, entry.n_rows,
                       entry.n_columns)
    return table


def find_ett_file(name: str, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Path of the ETT file ``name``: from a data directory, the cache, or a verified download.

    Raises
    ------
    ValueError
        For a ``name`` not in :data:`ETT_NAMES`.
    FileNotFoundError
        If the file is nowhere local and the download is off or fails; says where to put it.
    """
    if name not in ETT_NAMES:
        raise ValueError(f"`name` must be one of {ETT_NAMES}, got {name!r}")
    return find_long_term_file(name, data_dir, download)


def load_ett(name: str = "ETTh1", data_dir: str | Path | None = None,
             download: bool = True) -> TimeSeriesTable:
    """One ETT dataset (7 columns, target ``OT`` last), see :func:`find_ett_file`."""
    if name not in ETT_NAMES:
        raise ValueError(f"`name` must be one of {ETT_NAMES}, got {name!r}")
    return load_long_term(name, data_dir, download)
