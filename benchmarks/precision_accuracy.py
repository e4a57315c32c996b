"""Accuracy of bf16 mixed precision against float32: ETTh1, L = H = 96, several seeds.

For every seed and precision the same configuration is trained through
:meth:`calf_forecaster.pipeline.CALFPipeline.fit` (``validation=`` the standard validation split,
``stride=`` every stride-th training window), with GPT-2 small's architecture and random weights
(``save_backbone_config``, no download), the ETTh1 recipe of the registry (L1 loss, lr 5e-4,
batch 256, patience 10), the column scaler fitted on the training split; then every validation
and test window (stride 1) is forecast in the precision it was trained in, and scored in the
scaled space (the benchmark convention). The precisions are

* ``32``: Lightning's default float32;
* ``bf16-mixed``: Lightning's bf16 autocast with float32 master weights (``trainer_kwargs``), and
  prediction under the same autocast (:func:`calf_forecaster.training.predict_windows`).

The report gives, per precision, mean +- standard deviation over seeds of validation and test
MSE / MAE and of the time per epoch, and the paired difference (bf16 - float32, same seed, same
initial weights and shuffling) with its standard deviation: the difference is "within seed noise"
when its mean is below the float32 seed-to-seed standard deviation.

Usage::

    python benchmarks/precision_accuracy.py --seeds 3 --epochs 2 --stride 8 \\
        --json benchmarks/results/precision_accuracy_2026-11-20.json     # reduced: ~30 min
    python benchmarks/precision_accuracy.py --seeds 5 --epochs 100 --stride 1 --json full.json

Progress goes to stderr, the markdown summary to stdout; the JSON is rewritten after every run,
so an interrupted run keeps what it finished.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from statistics import mean, stdev
from typing import Any

import numpy as np

SEQ_LEN = PRED_LEN = 96
PRECISIONS = ("32", "bf16-mixed")


def windows(values: np.ndarray, seq_len: int, pred_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every (L + H)-row window of ``values`` (T, M) at stride 1: x (N, L, M), y (N, H, M)."""
    view = np.lib.stride_tricks.sliding_window_view(values, seq_len + pred_len, axis=0)
    view = view.transpose(0, 2, 1)  # (N, L + H, M)
    return view[:, :seq_len], view[:, seq_len:]


def cpu_description() -> dict[str, Any]:
    """lscpu's model name and the bf16 / AMX flags of this CPU."""
    model, flags = "unknown", set()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
            elif line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)),
            "avx512_bf16": "avx512_bf16" in flags,
            "amx": sorted(f for f in flags if f.startswith("amx"))}


def run_one(seed: int, precision: str, epochs: int, stride: int, backbone: str,
            data: dict[str, np.ndarray]) -> dict[str, Any]:
    """Train one seed in one precision; score validation and test windows."""
    import torch
    from speed import matmul_gflops  # benchmarks/speed.py, beside this script

    from calf_forecaster import CALFConfig, TrainingConfig
    from calf_forecaster.pipeline import CALFPipeline

    config = CALFConfig(seq_len=SEQ_LEN, pred_len=PRED_LEN, backbone=backbone, pretrained=False)
    training = TrainingConfig(loss="l1", learning_rate=5e-4, batch_size=256, patience=10,
                              max_epochs=epochs, seed=seed)
    trainer_kwargs = {} if precision == "32" else {"precision": precision}
    pipeline = CALFPipeline.build(config, training, trainer_kwargs=trainer_kwargs)
    calibration_before = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    run = pipeline.fit([data["train"]], validation=[data["validation"]], stride=stride)
    scores: dict[str, Any] = {}
    for part in ("validation", "test"):
        x, y = windows(data[part], SEQ_LEN, PRED_LEN)
        started = time.perf_counter()
        forecast = pipeline.forecast(x)  # raw values, in the training precision
        predict_s = time.perf_counter() - started
        error = pipeline.scaler.transform(forecast) - pipeline.scaler.transform(y)
        scores[part] = {"mse": float(np.mean(error ** 2)), "mae": float(np.mean(np.abs(error))),
                        "windows": len(x), "predict_s": predict_s}
    calibration_after = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    return {
        "seed": seed, "precision": precision, "epochs": run.epochs,
        "train_windows": run.n_train_windows, "train_s": run.seconds,
        "s_per_epoch": run.seconds / max(run.epochs, 1), **scores,
        "matmul_gflops_fp32": (calibration_before[0] + calibration_after[0]) / 2,
        "matmul_gflops_bf16": (calibration_before[1] + calibration_after[1]) / 2,
    }


def _mean_std(values: list[float]) -> str:
    spread = stdev(values) if len(values) > 1 else 0.0
    return f"{mean(values):.4f} ± {spread:.4f}"


def summary(runs: list[dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """Markdown table per precision, the paired difference, and the verdict per metric."""
    by = {p: {r["seed"]: r for r in runs if r["precision"] == p} for p in PRECISIONS}
    metrics = [("validation", "mse"), ("validation", "mae"), ("test", "mse"), ("test", "mae")]
    lines = ["| precision | seeds | " + " | ".join(f"{part} {m.upper()}" for part, m in metrics)
             + " | s/epoch | matmul GFLOP/s (fp32 / bf16) |",
             "|---|---:|" + "---:|" * len(metrics) + "---:|---:|"]
    for p in PRECISIONS:
        rows = list(by[p].values())
        if not rows:
            continue
        lines.append(f"| {p} | {len(rows)} | "
                     + " | ".join(_mean_std([r[part][m] for r in rows]) for part, m in metrics)
                     + f" | {_mean_std([r['s_per_epoch'] for r in rows])} "
                     f"| {mean(r['matmul_gflops_fp32'] for r in rows):.0f} / "
                     f"{mean(r['matmul_gflops_bf16'] for r in rows):.0f} |")
    paired = sorted(set(by["32"]) & set(by["bf16-mixed"]))
    verdict: dict[str, Any] = {"paired_seeds": paired}
    if paired:
        cells = []
        for part, m in metrics:
            differences = [by["bf16-mixed"][s][part][m] - by["32"][s][part][m] for s in paired]
            noise = stdev([by["32"][s][part][m] for s in paired]) if len(paired) > 1 else None
            within = noise is not None and abs(mean(differences)) <= noise
            verdict[f"{part}_{m}"] = {"mean_difference": mean(differences),
                                      "std_difference": stdev(differences) if len(paired) > 1
                                      else None, "fp32_seed_std": noise,
                                      "within_seed_noise": within}
            cells.append(f"{_mean_std(differences)} ({'within' if within else 'NOT within'} "
                         f"noise {noise if noise is not None else float('nan'):.4f})")
        lines.append(f"| bf16 - fp32 (paired) | {len(paired)} | " + " | ".join(cells)
                     + " | - | - |")
    return "\n".join(lines), verdict


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 2021, 2022, ...")
    parser.add_argument("--epochs", type=int, default=2, help="most epochs (early stopping on)")
    parser.add_argument("--stride", type=int, default=8, help="keep every stride-th window")
    parser.add_argument("--precision", default="32,bf16-mixed",
                        help="comma-separated Lightning precisions (default both)")
    parser.add_argument("--json", type=Path, help="write every run and the summary here")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in --json and run only the missing ones")
    args = parser.parse_args(argv)

    import torch

    from calf_forecaster.backbone import save_backbone_config
    from calf_forecaster.datasets import load_ett
    from calf_forecaster.datasets.splits import ett_split

    table = load_ett("ETTh1", download=False)
    split = ett_split("ETTh1", SEQ_LEN)
    data = {part: table.values[slice(*getattr(split, part))]
            for part in ("train", "validation", "test")}
    precisions = [p.strip() for p in args.precision.split(",")]
    seeds = [2021 + i for i in range(args.seeds)]
    machine = {**cpu_description(), "python": platform.python_version(),
               "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
               "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    command = "python benchmarks/precision_accuracy.py " + " ".join(sys.argv[1:] if argv is None
                                                                    else argv)
    runs: list[dict[str, Any]] = []
    if args.resume and args.json is not None and args.json.is_file():
        previous = json.loads(args.json.read_text())
        runs = list(previous["runs"])
        command, machine = previous["command"], {**previous["machine"],
                                                 "resumed": machine["date"]}
    done = {(run["seed"], run["precision"]) for run in runs}
    with tempfile.TemporaryDirectory(prefix="calf-precision-") as workdir:
        backbone = str(save_backbone_config(Path(workdir) / "gpt2-config"))
        for seed in seeds:  # both precisions of one seed back to back: drift touches both
            for precision in precisions:
                if (seed, precision) in done:
                    continue
                print(f"seed {seed}, precision {precision}: training", file=sys.stderr,
                      flush=True)
                result = run_one(seed, precision, args.epochs, args.stride, backbone, data)
                print(f"  {result['epochs']} epochs, {result['s_per_epoch']:.1f} s/epoch, "
                      f"val MSE {result['validation']['mse']:.4f}, test MSE "
                      f"{result['test']['mse']:.4f}", file=sys.stderr, flush=True)
                runs.append(result)
                text, verdict = summary(runs)
                if args.json:
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(
                        {"command": command, "machine": machine, "epochs": args.epochs,
                         "stride": args.stride, "runs": runs, "verdict": verdict}, indent=1))
    print(summary(runs)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
