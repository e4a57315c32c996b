"""The one place that resolves calf_forecaster's directories: the cache and where data files live.

| name | default | environment variable |
|---|---|---|
| :func:`cache_dir` | ``~/.cache/calf_forecaster`` | ``$CALF_FORECASTER_CACHE`` |
| :func:`download_dir` | ``cache_dir() / "data"`` | (follows the cache) |
| :func:`data_search_path` | see below | ``$CALF_DATA_DIR`` |

Data files are looked for, in this order, in

1. the ``data_dir`` argument given to a loader,
2. ``$CALF_DATA_DIR``,
3. ``shared/data`` beside a source checkout of this repository, i.e. ``<checkout>/../shared/data``
   (a developer convenience: it is used only when the package is imported from a checkout, one whose
   root holds ``pyproject.toml``, and only if that folder exists; an installed package never sees it),
4. :func:`download_dir`, where downloads are written.

Everything is read from the environment at call time, so changing a variable takes effect at once.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV_VAR = "CALF_FORECASTER_CACHE"
DATA_DIR_ENV_VAR = "CALF_DATA_DIR"

#: Root of the source checkout this module would belong to (``<root>/calf_forecaster/paths.py``).
_CHECKOUT_ROOT = Path(__file__).resolve().parents[1]
#: ``shared/data`` beside the checkout; ``None`` when this is not a checkout (an installed package).
CHECKOUT_DATA_DIR: Path | None = (
    _CHECKOUT_ROOT.parent / "shared" / "data" if (_CHECKOUT_ROOT / "pyproject.toml").is_file()
    else None
)


def cache_dir() -> Path:
    """``$CALF_FORECASTER_CACHE`` or ``~/.cache/calf_forecaster`` (not created here)."""
    root = os.environ.get(CACHE_ENV_VAR)
    return Path(root) if root else Path.home() / ".cache" / "calf_forecaster"


def download_dir() -> Path:
    """Folder that downloaded data files go to: ``cache_dir() / "data"`` (not created here)."""
    return cache_dir() / "data"


def data_search_path(data_dir: str | Path | None = None) -> list[Path]:
    """Folders searched for data files, most specific first (see the module docstring).

    Parameters
    ----------
    data_dir
        A folder given by the caller; searched first. ``None`` or ``""`` skips it.

    Returns
    -------
    list of Path
        The explicit folder, ``$CALF_DATA_DIR``, the checkout's ``shared/data`` (only if it exists)
        and :func:`download_dir`, without duplicates. Folders other than the checkout's are listed
        whether or not they exist, so that error messages can name them.
    """
    candidates: list[Path] = [Path(d).expanduser() for d in (data_dir, os.environ.get(
        DATA_DIR_ENV_VAR)) if d]
    if CHECKOUT_DATA_DIR is not None and CHECKOUT_DATA_DIR.is_dir():
        candidates.append(CHECKOUT_DATA_DIR)
    candidates.append(download_dir())
    unique: list[Path] = []
    for folder in candidates:
        if folder not in unique:
            unique.append(folder)
    return unique
