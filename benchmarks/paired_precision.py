"""bf16-mixed against float32 from calf-bench records: the same runs, seed by seed.

Pairs every record trained with ``{"precision": "bf16-mixed"}`` with the record of the same
configuration (suite, data, L, H, variant, backbone, seed, epochs, stride) trained in float32
(``{}`` or ``{"precision": "32-true"}``), and prints the test MSE/MAE of each seed,
seconds per epoch, and the paired differences against the float32 seed-to-seed spread.

Usage::

    python benchmarks/paired_precision.py --records-dir benchmarks/records --variant random-init
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path
from typing import Any

from calf_forecaster.bench.report import CELL_FIELDS

FLOAT32 = ("{}", '{"precision":"32-true"}')
BF16 = '{"precision":"bf16-mixed"}'
#: A pair shares the whole report cell but the Trainer arguments, and the seed.
SHARED = (*(f for f in CELL_FIELDS if f != "trainer_kwargs"), "seed")


def pairs(records: list[dict[str, Any]], variant: str | None) -> list[tuple[dict, dict]]:
    """(float32, bf16) record pairs of identical configuration and seed."""
    ok = [r for r in records if r.get("status") == "ok"
          and (variant is None or r["spec"]["variant"] == variant)]
    float32 = {tuple(r["spec"].get(f) for f in SHARED): r for r in ok
               if r["spec"]["trainer_kwargs"] in FLOAT32}
    return [(float32[key], r) for r in ok if r["spec"]["trainer_kwargs"] == BF16
            and (key := tuple(r["spec"].get(f) for f in SHARED)) in float32]


def _std(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def markdown(found: list[tuple[dict, dict]]) -> str:
    lines = ["| data | H | variant | epochs | seed | precision | validation MSE (epoch chosen) "
             "| test MSE | test MAE | s/epoch |", "|---|---|---|---|---|---|---:|---:|---:|---:|"]
    for f32, b16 in sorted(found, key=lambda p: p[0]["spec"]["seed"]):
        for name, r in (("float32", f32), ("bf16-mixed", b16)):
            s, m, c = r["spec"], r["metrics"], r["cost"]
            chosen = r.get("protocol", {}).get("selection") or {}
            validation = (f"{chosen['best_validation_loss']:.4f} ({chosen['best_epoch'] + 1})"
                          if chosen.get("best_validation_loss") is not None else "not recorded")
            lines.append(f"| {s['dataset']} | {s['pred_len']} | {s['variant']} | "
                         f"{c['epochs']} | {s['seed']} | {name} | {validation} | {m['mse']:.4f} | "
                         f"{m['mae']:.4f} | {c['seconds_per_epoch']:.1f} |")
    def validation(r: dict[str, Any]) -> float:
        value = (r.get("protocol", {}).get("selection") or {}).get("best_validation_loss")
        return math.nan if value is None else value

    lines += ["", "| | validation MSE | test MSE | test MAE | s/epoch |",
              "|---|---:|---:|---:|---:|"]
    for name, index in (("float32", 0), ("bf16-mixed", 1)):
        cols = [[validation(p[index]) for p in found],
                *([p[index]["metrics"][k] for p in found] for k in ("mse", "mae"))]
        seconds = [p[index]["cost"]["seconds_per_epoch"] for p in found]
        lines.append(f"| {name}, mean ± std over {len(found)} seed(s) | "
                     + " | ".join(f"{statistics.mean(c):.4f} ± {_std(c):.4f}" for c in cols)
                     + f" | {statistics.mean(seconds):.1f} |")
    diffs = [[validation(p[1]) - validation(p[0]) for p in found],
             *([p[1]["metrics"][k] - p[0]["metrics"][k] for p in found] for k in ("mse", "mae"))]
    ratio = [p[0]["cost"]["seconds_per_epoch"] / p[1]["cost"]["seconds_per_epoch"] for p in found]
    lines.append("| bf16 - float32, paired over seeds | "
                 + " | ".join(f"{statistics.mean(d):+.4f} ± {_std(d):.4f}" for d in diffs)
                 + f" | float32 / bf16: {statistics.mean(ratio):.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records-dir", type=Path, default=Path("benchmarks/records"))
    parser.add_argument("--variant", default=None, help="one variant only, e.g. random-init")
    args = parser.parse_args(argv)
    records = [json.loads(p.read_text()) for p in sorted(args.records_dir.glob("*.json"))]
    found = pairs(records, args.variant)
    if not found:
        parser.error(f"no float32 / bf16-mixed record pairs in {args.records_dir}")
    print(markdown(found))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
