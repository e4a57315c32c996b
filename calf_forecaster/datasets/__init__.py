"""Benchmark data sets: read from a data folder, or download the canonical file once.

Nothing here needs pandas. Files are looked for along
:func:`calf_forecaster.paths.data_search_path` (the ``data_dir`` argument, ``$CALF_DATA_DIR``,
``shared/data`` beside a source checkout, the download folder), in the layout ``<dir>/ett/ETTh1.csv``
or flat ``<dir>/ETTh1.csv``; otherwise the canonical file is downloaded into
``$CALF_FORECASTER_CACHE/data`` and checked against its known SHA-256.

| module | what |
|---|---|
| :mod:`~calf_forecaster.datasets.long_term` | registry of ETTh1/2, ETTm1/2, Weather, ECL, Traffic, Exchange, ILI; :func:`load_long_term` |
| :mod:`~calf_forecaster.datasets.splits` | :class:`Split`, :func:`ett_split`, :func:`custom_split`, :func:`few_shot_split`, :func:`n_windows` |
| :mod:`~calf_forecaster.datasets.m4` | M4 groups, files, the training sampler, held-out validation, test inputs |
| :mod:`~calf_forecaster.datasets.table` | :class:`TimeSeriesTable`, :func:`read_csv_table` |
"""

from __future__ import annotations

from calf_forecaster.datasets._files import ChecksumMismatchError, find_data_file
from calf_forecaster.datasets.long_term import (
    ETT_SHA256,
    ETT_URL,
    LONG_TERM_DATASETS,
    LONG_TERM_NAMES,
    LongTermDataset,
    find_ett_file,
    find_long_term_file,
    load_ett,
    load_long_term,
    long_term_dataset,
    long_term_split,
)
from calf_forecaster.datasets.m4 import (
    M4_GROUPS,
    M4Group,
    M4TrainingDataset,
    load_m4,
    load_m4_naive2,
    m4_group,
    m4_holdout,
    m4_last_windows,
)
from calf_forecaster.datasets.splits import (
    ETT_NAMES,
    Split,
    custom_split,
    ett_split,
    few_shot_split,
    n_windows,
)
from calf_forecaster.datasets.table import TimeSeriesTable, read_csv_table
from calf_forecaster.paths import DATA_DIR_ENV_VAR

__all__ = [
    "DATA_DIR_ENV_VAR",
    "ETT_NAMES",
    "ETT_SHA256",
    "ETT_URL",
    "LONG_TERM_DATASETS",
    "LONG_TERM_NAMES",
    "M4_GROUPS",
    "ChecksumMismatchError",
    "LongTermDataset",
    "M4Group",
    "M4TrainingDataset",
    "Split",
    "TimeSeriesTable",
    "custom_split",
    "ett_split",
    "few_shot_split",
    "find_data_file",
    "find_ett_file",
    "find_long_term_file",
    "load_ett",
    "load_long_term",
    "load_m4",
    "load_m4_naive2",
    "long_term_dataset",
    "long_term_split",
    "m4_group",
    "m4_holdout",
    "m4_last_windows",
    "n_windows",
    "read_csv_table",
]
