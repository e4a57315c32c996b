"""Benchmark datasets: read from a data directory, or download the canonical file once.

Files are looked up in ``data_dir`` (argument), then ``$CALF_DATA_DIR``, both in the layout
``<dir>/ett/ETTh1.csv`` or flat ``<dir>/ETTh1.csv``; otherwise the canonical file is downloaded into
``$CALF_FORECASTER_CACHE/data`` and checked against its known SHA-256. Nothing here needs pandas.

The standard long-term protocol's split (``ett_split``) is the one CALF, PatchTST and iTransformer
report: 12/4/4 months of train/validation/test, each later split starting ``seq_len`` rows earlier.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from calf_forecaster.prototypes import default_cache_dir

logger = logging.getLogger(__name__)

DATA_DIR_ENV_VAR = "CALF_DATA_DIR"
ETT_NAMES = ("ETTh1", "ETTh2", "ETTm1", "ETTm2")
ETT_URL = "https://raw.githubusercontent.com/zhouhaoyi/ETDataset/main/ETT-small/{name}.csv"
ETT_SHA256 = {
    "ETTh1": "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
    "ETTh2": "a3dc2c597b9218c7ce1cd55eb77b283fd459a1d09d753063f944967dd6b9218b",
    "ETTm1": "6ce1759b1a18e3328421d5d75fadcb316c449fcd7cec32820c8dafda71986c9e",
    "ETTm2": "db973ca252c6410a30d0469b13d696cf919648d0f3fd588c60f03fdbdbadd1fd",
}


@dataclass(frozen=True)
class TimeSeriesTable:
    """A multivariate series read from CSV: timestamps, column names and (T, M) values."""

    timestamps: np.ndarray  # (T,) datetime64[s]
    columns: tuple[str, ...]  # M names, in file order
    values: np.ndarray  # (T, M) float64


@dataclass(frozen=True)
class Split:
    """Row ranges ``[start, stop)`` of the train, validation and test parts of one series."""

    train: tuple[int, int]
    validation: tuple[int, int]
    test: tuple[int, int]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_ett_file(name: str, data_dir: str | Path | None = None, download: bool = True) -> Path:
    """Path of the ETT file ``name``: from a data directory, the cache, or a verified download.

    Raises
    ------
    ValueError
        For an unknown ``name``.
    FileNotFoundError
        If the file is nowhere local and the download is off or fails; says where to put it.
    """
    if name not in ETT_NAMES:
        raise ValueError(f"`name` must be one of {ETT_NAMES}, got {name!r}")
    folders = [Path(d) for d in (data_dir, os.environ.get(DATA_DIR_ENV_VAR)) if d]
    cache = default_cache_dir() / "data" / "ett"
    for folder in [*folders, cache.parent]:
        for candidate in (folder / "ett" / f"{name}.csv", folder / f"{name}.csv"):
            if candidate.is_file():
                return candidate
    target = cache / f"{name}.csv"
    if download:
        url = ETT_URL.format(name=name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            temporary = target.with_suffix(".part")
            logger.info("downloading %s to %s", url, target)
            with urllib.request.urlopen(url, timeout=30) as response, temporary.open("wb") as out:
                out.write(response.read())
            if _sha256(temporary) != ETT_SHA256[name]:
                temporary.unlink()
                raise OSError(f"checksum mismatch for {url}")
            os.replace(temporary, target)
            return target
        except OSError as error:
            reason = f"download from {url} failed ({error})"
    else:
        reason = "download disabled"
    raise FileNotFoundError(
        f"{name}.csv not found in {[str(f) for f in folders] or 'no data directory'} and {reason}; "
        f"pass `data_dir` (or set ${DATA_DIR_ENV_VAR}) to a folder holding ett/{name}.csv"
    )


def read_csv_table(path: str | Path, time_column: str = "date") -> TimeSeriesTable:
    """Read a ``date,col1,col2,...`` CSV into a :class:`TimeSeriesTable`."""
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    if header[0] != time_column:
        raise ValueError(f"{path}: first column is {header[0]!r}, expected {time_column!r}")
    timestamps = np.array([row[0] for row in rows], dtype="datetime64[s]")
    values = np.array([row[1:] for row in rows], dtype=np.float64)
    return TimeSeriesTable(timestamps, tuple(header[1:]), values)


def load_ett(name: str = "ETTh1", data_dir: str | Path | None = None,
             download: bool = True) -> TimeSeriesTable:
    """One ETT dataset (7 columns, target ``OT`` last), see :func:`find_ett_file`."""
    return read_csv_table(find_ett_file(name, data_dir, download))


def ett_split(name: str, seq_len: int) -> Split:
    """The standard 12/4/4-month split of an ETT series (hourly or 15-minute rows)."""
    if name not in ETT_NAMES:
        raise ValueError(f"`name` must be one of {ETT_NAMES}, got {name!r}")
    rows_per_hour = 4 if name.startswith("ETTm") else 1
    month = 30 * 24 * rows_per_hour
    train_end, validation_end, test_end = 12 * month, 16 * month, 20 * month
    return Split(train=(0, train_end), validation=(train_end - seq_len, validation_end),
                 test=(validation_end - seq_len, test_end))
