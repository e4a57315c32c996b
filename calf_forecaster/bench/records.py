"""Run records: one JSON file per finished run, machine and versions, resume, git commits.

A record holds the run's :class:`~calf_forecaster.bench.grid.RunSpec` and key, its status,
metrics, window counts, protocol details, cost, a few example windows, the git commit of the
code, the package versions and the machine. A run is finished when a record with its key exists
in any records folder; :func:`finished_keys` is what a resumed sweep skips.
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import logging
import os
import platform
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from calf_forecaster.bench.grid import BENCH_FORMAT, RunSpec

logger = logging.getLogger(__name__)

PACKAGES = ("calf-forecaster", "torch", "pytorch-lightning", "transformers", "peft", "darts",
            "numpy")
_ROOT = Path(__file__).resolve().parents[2]


def cpu_model() -> str | None:
    """The CPU's model name from ``/proc/cpuinfo`` (``None`` where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info() -> dict[str, Any]:
    """CPU model, cores (and those usable), GPU names, platform and Python."""
    import torch

    gpus = ([torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            if torch.cuda.is_available() else [])
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": cpu_model(), "cores": os.cpu_count(), "usable_cores": usable,
            "torch_threads": torch.get_num_threads(), "gpus": gpus,
            "platform": platform.platform(), "python": platform.python_version()}


def package_versions() -> dict[str, str | None]:
    """Installed versions of the packages a result depends on."""
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit(root: Path = _ROOT) -> dict[str, Any] | None:
    """HEAD of the checkout the code runs from, and whether tracked files differ from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=root, capture_output=True, text=True, check=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": head, "dirty": bool(dirty)}


def make_record(spec: RunSpec, body: dict[str, Any], started: float) -> dict[str, Any]:
    """The full record of a finished run."""
    return {"format": BENCH_FORMAT, "key": spec.key(), "name": spec.name,
            "spec": spec.to_dict(), **body, "wall_seconds": time.time() - started,
            "finished_at": datetime.datetime.now(datetime.timezone.utc).isoformat(
                timespec="seconds"),
            "git": git_commit(), "packages": package_versions(), "machine": machine_info()}


def write_record(directory: Path, spec: RunSpec, record: dict[str, Any]) -> Path:
    """Write ``record`` as ``directory / spec.file_name`` atomically; returns the path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / spec.file_name
    partial = path.with_suffix(".json.part")
    partial.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    os.replace(partial, path)
    return path


def load_records(directories: Iterable[Path]) -> list[dict[str, Any]]:
    """Every record in ``directories`` (one per key: the first found wins)."""
    records: dict[str, dict[str, Any]] = {}
    for directory in directories:
        if not Path(directory).is_dir():
            continue
        for path in sorted(Path(directory).glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as error:
                logger.warning("skipping unreadable record %s (%s)", path, error)
                continue
            if isinstance(record, dict) and "key" in record and "spec" in record:
                records.setdefault(record["key"], record)
    return list(records.values())


def finished_keys(directories: Iterable[Path]) -> set[str]:
    """Keys of the runs that have a record (what a resumed sweep skips)."""
    return {record["key"] for record in load_records(directories)}


def commit_record(path: Path, message: str, attempts: int = 10) -> bool:
    """``git add`` and ``git commit`` this one file; retried while another git holds the lock.

    Returns
    -------
    bool
        Whether a commit was made (``False`` outside a repository; logged).
    """
    path = Path(path).resolve()
    for attempt in range(attempts):
        add = subprocess.run(["git", "add", "--", str(path)], cwd=path.parent,
                             capture_output=True, text=True)
        commit = add if add.returncode else subprocess.run(
            ["git", "commit", "-q", "-m", message, "--", str(path)], cwd=path.parent,
            capture_output=True, text=True)
        if commit.returncode == 0:
            return True
        if "index.lock" not in (commit.stderr + commit.stdout):
            logger.warning("could not commit %s: %s", path, commit.stderr.strip())
            return False
        time.sleep(1 + attempt)
    logger.warning("could not commit %s: the git index stayed locked", path)
    return False
