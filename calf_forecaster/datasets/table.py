"""A dated multivariate series read from a ``date,col1,col2,...`` CSV, without pandas.

Symbols: T time steps (rows), M value columns.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Dates like "1990/1/1 0:00" (the long-term benchmark copy of Exchange) that numpy will not parse.
_LOOSE_DATE = re.compile(r"^(\d{4})[-/](\d{1,2})[-/](\d{1,2})(?:[ T](\d{1,2}):(\d{1,2})(?::(\d{1,2}))?)?$")


@dataclass(frozen=True)
class TimeSeriesTable:
    """A multivariate series read from CSV: timestamps, column names and (T, M) values."""

    timestamps: np.ndarray  # (T,) datetime64[s]
    columns: tuple[str, ...]  # M names, in file order
    values: np.ndarray  # (T, M) float64


def _parse_timestamps(texts: list[str], path: str | Path) -> np.ndarray:
    """ISO timestamps directly; ``Y/M/D H:MM[:SS]`` (unpadded fields) through a normalisation."""
    try:
        return np.array(texts, dtype="datetime64[s]")  # (T,)
    except ValueError:
        pass
    normalised = []
    for row, text in enumerate(texts, start=2):
        match = _LOOSE_DATE.match(text.strip())
        if match is None:
            raise ValueError(f"{path}, line {row}: cannot read the timestamp {text!r}; expected "
                             f"'YYYY-MM-DD[ HH:MM[:SS]]' or 'YYYY/M/D[ H:MM[:SS]]'")
        year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
        normalised.append(f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}")
    return np.array(normalised, dtype="datetime64[s]")


def read_csv_table(path: str | Path, time_column: str = "date") -> TimeSeriesTable:
    """Read a ``date,col1,col2,...`` CSV into a :class:`TimeSeriesTable`.

    Parameters
    ----------
    path
        CSV file with a header row; the first column holds timestamps, the others numbers.
    time_column
        Expected name of the first column.

    Raises
    ------
    ValueError
        If the first column is not ``time_column``, a timestamp cannot be read or a value is not
        a number.
    """
    with Path(path).open(newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader)
        rows = list(reader)
    if header[0] != time_column:
        raise ValueError(f"{path}: first column is {header[0]!r}, expected {time_column!r}")
    timestamps = _parse_timestamps([row[0] for row in rows], path)
    values = np.array([row[1:] for row in rows], dtype=np.float64)  # (T, M)
    return TimeSeriesTable(timestamps, tuple(header[1:]), values)
