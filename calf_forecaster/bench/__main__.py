"""``python -m calf_forecaster.bench``: the same as the ``calf-bench`` command."""

from __future__ import annotations

from calf_forecaster.bench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
