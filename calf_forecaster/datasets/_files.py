"""Finding a data file along :func:`calf_forecaster.paths.data_search_path`, or downloading it.

A file is named by its path relative to a data folder (``ett/ETTh1.csv``). In every folder of the
search path it is looked for under that path, under any alias (e.g. the Time-Series-Library layout
``ETT-small/ETTh1.csv``) and under its bare name (``ETTh1.csv``). If it is nowhere, the canonical
URL is downloaded (standard library only, 30 s timeout) into a temporary file beside the target in
:func:`calf_forecaster.paths.download_dir`, checked against its SHA-256 and only then renamed into
place, so an interrupted or corrupt download never leaves a file that a later call would trust.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shlex
import tempfile
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from calf_forecaster import paths

logger = logging.getLogger(__name__)

DOWNLOAD_TIMEOUT_S = 30.0
_BLOCK = 1 << 20


class ChecksumMismatchError(OSError):
    """A downloaded file's SHA-256 differs from the recorded one (the file has been deleted)."""


def sha256_of(path: str | Path) -> str:
    """Hex SHA-256 digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, target: str | Path, sha256: str | None) -> Path:
    """Download ``url`` to ``target`` atomically, checking its SHA-256 when one is known.

    Parameters
    ----------
    url
        Source URL (any scheme :func:`urllib.request.urlopen` accepts).
    target
        Destination file; its folder is created.
    sha256
        Expected hex digest, or ``None`` to accept the file unverified (a warning is logged that
        gives the digest obtained, so that it can be recorded).

    Returns
    -------
    Path
        ``target``.

    Raises
    ------
    ChecksumMismatchError
        If the digest differs; nothing is left at ``target`` or in a partial file.
    OSError, http.client.HTTPException, ValueError
        If the download fails (the partial file is deleted).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle = tempfile.NamedTemporaryFile(dir=target.parent, prefix=f".{target.name}.",
                                         suffix=".part", delete=False)
    partial = Path(handle.name)
    try:
        digest = hashlib.sha256()
        with handle, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            for block in iter(lambda: response.read(_BLOCK), b""):
                digest.update(block)
                handle.write(block)
        obtained = digest.hexdigest()
        if sha256 is None:
            logger.warning("%s downloaded from %s is unverified: no SHA-256 is recorded for it "
                           "(obtained %s)", target.name, url, obtained)
        elif obtained != sha256.lower():
            raise ChecksumMismatchError(f"checksum mismatch for {url}: expected SHA-256 {sha256}, "
                                        f"got {obtained}; the partial file was deleted")
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _candidates(relative: str, aliases: Sequence[str]) -> list[str]:
    names = [relative, *aliases, Path(relative).name]
    return list(dict.fromkeys(names))  # keep the order, drop repeats


def find_data_file(relative: str, url: str | None = None, sha256: str | None = None, *,
                   data_dir: str | Path | None = None, download: bool = True,
                   aliases: Sequence[str] = (), how_to_get: str | None = None) -> Path:
    """Path of the data file ``relative``, found locally or downloaded once.

    Parameters
    ----------
    relative
        Path inside a data folder, e.g. ``"ett/ETTh1.csv"``.
    url
        Canonical download URL, or ``None`` when the file cannot be downloaded directly.
    sha256
        Its known hex SHA-256, or ``None`` (downloads are then accepted with a warning).
    data_dir
        Folder searched first, see :func:`calf_forecaster.paths.data_search_path`.
    download
        Whether to download ``url`` into :func:`calf_forecaster.paths.download_dir` when the file
        is nowhere local.
    aliases
        Other relative paths the same file may have (e.g. ``"ETT-small/ETTh1.csv"``).
    how_to_get
        Instructions for the error message when ``url`` is ``None``.

    Returns
    -------
    Path
        An existing file.

    Raises
    ------
    FileNotFoundError
        If the file is nowhere local and the download is off, impossible or fails; the message
        names the folders searched and gives the fix.
    """
    folders = paths.data_search_path(data_dir)
    names = _candidates(relative, aliases)
    for folder in folders:
        for name in names:
            candidate = folder / name
            if candidate.is_file():
                logger.debug("using %s", candidate)
                return candidate
    target = paths.download_dir() / relative
    cause: BaseException | None = None
    if url is None:
        reason = "it has no direct download"
    elif not download:
        reason = "download=False"
    else:
        try:
            logger.info("downloading %s to %s", url, target)
            return download_file(url, target, sha256)
        except (OSError, http.client.HTTPException, ValueError) as error:
            reason, cause = f"the download from {url} failed ({error})", error
    fix = (f"pass data_dir=... or set ${paths.DATA_DIR_ENV_VAR} to a folder holding {relative}")
    if url is not None:
        fix += (f", or fetch it with `curl -fL --create-dirs -o {shlex.quote(str(target))} "
                f"{shlex.quote(url)}`")
        if not download:
            fix += " or call again with download=True"
    elif how_to_get:
        fix += f"; {how_to_get}"
    searched = ", ".join(str(folder) for folder in folders)
    raise FileNotFoundError(f"{relative} not found in {searched} and {reason}. Fix: {fix}") from cause
