"""One-command check of CALF on a CUDA machine (under 10 minutes on one recent GPU).

1. the CUDA tests: ``pytest -m "not slow" -k "cuda or gpu"``;
2. one ETTh1 epoch (L = H = 96, stride 1, batch 256, GPT-2 small's architecture with random
   weights, the standard split, scaler on train) through ``CALFPipeline.fit`` on the GPU, in
   float32 and in ``bf16-mixed``, with training windows/s and peak GPU memory
   (``torch.cuda.max_memory_allocated``);
3. prediction of every test window in each precision: windows/s and peak GPU memory;
4. the GPU's matrix-product rate in float32 and bfloat16 (``speed.matmul_gflops``), beside them.

On a machine without CUDA it says so and exits with status 0, having run nothing.

Usage::

    python benchmarks/gpu_check.py            # or: bash benchmarks/gpu_check.sh
    python benchmarks/gpu_check.py --skip-tests --json gpu.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SEQ_LEN = PRED_LEN = 96
REPO_ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-tests", action="store_true", help="skip the CUDA tests")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)

    import torch

    if not torch.cuda.is_available():
        print("no CUDA: torch sees no GPU on this machine (torch "
              f"{torch.__version__}); nothing was checked. Run this on a CUDA machine.")
        return 0

    from precision_accuracy import windows  # benchmarks/, beside this script
    from speed import matmul_gflops

    from calf_forecaster import CALFConfig, TrainingConfig
    from calf_forecaster.backbone import save_backbone_config
    from calf_forecaster.datasets import load_ett
    from calf_forecaster.datasets.splits import ett_split
    from calf_forecaster.pipeline import CALFPipeline

    report: dict[str, object] = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__,
                                 "cuda": torch.version.cuda}
    print(f"GPU: {report['gpu']}, torch {report['torch']}, CUDA {report['cuda']}", flush=True)
    if not args.skip_tests:
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                                "-m", "not slow", "-k", "cuda or gpu", "tests"], cwd=REPO_ROOT)
        report["tests_exit_code"] = tests.returncode
        print(f"CUDA tests: exit code {tests.returncode}", flush=True)
    report["matmul_gflops"] = {"float32": matmul_gflops(torch.float32, device="cuda"),
                               "bfloat16": matmul_gflops(torch.bfloat16, device="cuda")}
    print("matrix products: {float32:.0f} GFLOP/s float32, {bfloat16:.0f} GFLOP/s bfloat16"
          .format(**report["matmul_gflops"]), flush=True)

    table = load_ett("ETTh1", download=False)
    split = ett_split("ETTh1", SEQ_LEN)
    train = table.values[slice(*split.train)]
    test_x, _ = windows(table.values[slice(*split.test)], SEQ_LEN, PRED_LEN)
    runs = []
    with tempfile.TemporaryDirectory(prefix="calf-gpu-") as workdir:
        backbone = str(save_backbone_config(Path(workdir) / "gpt2-config"))
        for precision in ("32-true", "bf16-mixed"):
            config = CALFConfig(seq_len=SEQ_LEN, pred_len=PRED_LEN, backbone=backbone,
                                pretrained=False)
            training = TrainingConfig(max_epochs=1, batch_size=256, validation_size=0, seed=2021)
            pipeline = CALFPipeline.build(config, training, trainer_kwargs={
                "accelerator": "gpu", "devices": 1, "precision": precision})
            torch.cuda.reset_peak_memory_stats()
            run = pipeline.fit([train])
            train_peak = torch.cuda.max_memory_allocated() / 2 ** 30
            torch.cuda.reset_peak_memory_stats()
            started = time.perf_counter()
            forecast = pipeline.forecast(test_x)
            torch.cuda.synchronize()
            predict_s = time.perf_counter() - started
            figures = {"precision": precision, "device": str(run.device),
                       "train_windows": run.n_train_windows, "train_s": run.seconds,
                       "train_windows_per_s": run.n_train_windows / run.seconds,
                       "train_peak_gib": train_peak, "predict_windows": len(test_x),
                       "predict_windows_per_s": len(test_x) / predict_s,
                       "predict_peak_gib": torch.cuda.max_memory_allocated() / 2 ** 30,
                       "finite": bool(np.isfinite(forecast).all())}
            runs.append(figures)
            print("{precision}: training {train_windows_per_s:.0f} windows/s ({train_windows} "
                  "windows in {train_s:.1f} s on {device}), peak {train_peak_gib:.2f} GiB; "
                  "prediction {predict_windows_per_s:.0f} windows/s, peak {predict_peak_gib:.2f} "
                  "GiB; finite forecasts: {finite}".format(**figures), flush=True)
    report["runs"] = runs
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0 if report.get("tests_exit_code", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
