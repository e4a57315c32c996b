"""One-window latency of CALF: the network, the core, and the sktime and darts adapters.

Measures, with GPT-2 small's architecture (``save_backbone_config``, random weights, no download),
M = 7 variates, L = H = 96 (the ETTh1 shape), batch 1, on the CPU:

* ``network``: ``CALF.predict`` of one (1, L, M) tensor under ``torch.inference_mode`` (eval);
* ``core``: :func:`calf_forecaster.training.predict_windows` of one window (checks, float64
  statistics, the finite check);
* ``pipeline``: :meth:`CALFPipeline.forecast` (scaling and un-scaling around ``core``);
* ``sktime``: ``CALFForecaster.predict(fh=1..96)`` of one series (a pandas frame of 500 rows);
* ``darts``: ``CALFModel.predict(96, series=...)`` of one series (darts builds a Lightning
  ``Trainer`` and a data loader per call).

Each figure is the median of ``--calls`` calls after ``--warmup`` calls, in each precision asked
(``--precision 32,bf16``: bf16 autocast in the adapters through ``trainer_kwargs`` /
``pl_trainer_kwargs`` ``{"precision": "bf16-mixed"}``), with the float32 and bfloat16
matrix-product calibration of :func:`speed.matmul_gflops` measured right before. The adapters
are "fitted" for 0 epochs (sktime) or one epoch on one short series (darts): latency does not
depend on the weights. ``--profile`` prints the ``cProfile`` top functions of each adapter's
calls beside the network's own time, to show what is not the network.

Usage::

    python benchmarks/latency.py --json latency.json
    python benchmarks/latency.py --precision 32,bf16 --calls 20 --profile
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import numpy as np

SEQ_LEN = PRED_LEN = 96
N_VARIATES = 7
HISTORY = 500  # rows of the one series the adapters hold


def timed(call: Callable[[], object], warmup: int, calls: int) -> dict[str, float]:
    """Median and range of ``calls`` wall-clock timings of ``call`` after ``warmup`` calls, ms."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1e3)
    return {"median_ms": median(times), "min_ms": min(times), "max_ms": max(times)}


def profile(call: Callable[[], object], calls: int, top: int = 15) -> str:
    """cProfile's top ``top`` functions by cumulative time over ``calls`` calls."""
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(calls):
        call()
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(top)
    return text.getvalue()


def build_calls(backbone: str, precision: str) -> dict[str, Callable[[], object]]:
    """The five calls to time, each forecasting one window of the same shape."""
    import pandas as pd
    import torch
    from darts import TimeSeries

    from calf_forecaster import CALF, CALFConfig, TrainingConfig
    from calf_forecaster.darts import CALFModel
    from calf_forecaster.pipeline import CALFPipeline
    from calf_forecaster.sktime import CALFForecaster
    from calf_forecaster.training import predict_windows

    lightning = None if precision == "32" else "bf16-mixed"
    trainer = {} if lightning is None else {"precision": lightning}
    rng = np.random.default_rng(0)
    values = np.cumsum(rng.standard_normal((HISTORY, N_VARIATES)), axis=0)  # (T, M)
    index = pd.date_range("2021-01-01", periods=HISTORY, freq="h")
    frame = pd.DataFrame(values, index=index, columns=[f"c{k}" for k in range(N_VARIATES)])
    window = values[None, -SEQ_LEN:]  # (1, L, M)

    torch.manual_seed(0)
    network = CALF.from_pretrained(CALFConfig(seq_len=SEQ_LEN, pred_len=PRED_LEN,
                                              backbone=backbone, pretrained=False)).eval()
    tensor = torch.tensor(window, dtype=torch.float32)
    autocast_dtype = torch.bfloat16 if lightning else torch.float32

    def network_call() -> object:
        with torch.inference_mode(), torch.autocast("cpu", autocast_dtype,
                                                     enabled=lightning is not None):
            return network.predict(tensor)

    pipeline = CALFPipeline(network, TrainingConfig(max_epochs=0), None, trainer)
    pipeline.fit([values])

    forecaster = CALFForecaster(seq_len=SEQ_LEN, backbone=backbone, pretrained=False,
                                max_epochs=0, random_state=0, trainer_kwargs=trainer or None)
    forecaster.fit(frame, fh=list(range(1, PRED_LEN + 1)))

    series = TimeSeries.from_dataframe(frame.astype(np.float32))
    darts_model = CALFModel(input_chunk_length=SEQ_LEN, output_chunk_length=PRED_LEN,
                            backbone=backbone, pretrained=False, n_epochs=1, batch_size=32,
                            random_state=0, pl_trainer_kwargs={"accelerator": "cpu", **trainer})
    darts_model.fit(series[-(SEQ_LEN + PRED_LEN + 4):])

    return {
        "network": network_call,
        "core": lambda: predict_windows(network, window, precision=lightning),
        "pipeline": lambda: pipeline.forecast(window),
        "sktime": lambda: forecaster.predict(),
        "darts": lambda: darts_model.predict(PRED_LEN, series=series),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", default="32", help="comma-separated: 32, bf16")
    parser.add_argument("--calls", type=int, default=20, help="timed calls per figure")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls first")
    parser.add_argument("--only", help="comma-separated subset of network,core,pipeline,"
                                       "sktime,darts")
    parser.add_argument("--profile", action="store_true",
                        help="print cProfile's top functions of every call (to stderr)")
    parser.add_argument("--json", type=Path, help="write every figure here")
    args = parser.parse_args(argv)

    import torch
    from speed import machine_info, matmul_gflops  # benchmarks/speed.py, beside this script

    from calf_forecaster.backbone import save_backbone_config
    from calf_forecaster.training import quiet_lightning

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="calf-latency-") as workdir, quiet_lightning():
        backbone = str(save_backbone_config(Path(workdir) / "gpt2-config"))
        for precision in (p.strip() for p in args.precision.split(",")):
            calls = build_calls(backbone, precision)
            wanted = args.only.split(",") if args.only else list(calls)
            for name in wanted:
                calibration = {"fp32": matmul_gflops(torch.float32),
                               "bf16": matmul_gflops(torch.bfloat16)}
                figure = timed(calls[name], args.warmup, args.calls)
                results.append({"call": name, "precision": precision, **figure,
                                "calibration_gflops": calibration})
                print(f"{name} {precision}: {figure['median_ms']:.1f} ms (median of "
                      f"{args.calls}; {figure['min_ms']:.1f}-{figure['max_ms']:.1f}), "
                      f"calibration fp32 {calibration['fp32']:.0f} / bf16 "
                      f"{calibration['bf16']:.0f} GFLOP/s", file=sys.stderr, flush=True)
                if args.profile:
                    print(f"--- profile of {name} {precision}\n"
                          f"{profile(calls[name], max(args.calls // 2, 1))}", file=sys.stderr)
    print("| call | precision | median ms | min-max ms | calibration GFLOP/s fp32 / bf16 |")
    print("|---|---|---:|---:|---:|")
    for r in results:
        print(f"| {r['call']} | {r['precision']} | {r['median_ms']:.1f} | {r['min_ms']:.1f}-"
              f"{r['max_ms']:.1f} | {r['calibration_gflops']['fp32']:.0f} / "
              f"{r['calibration_gflops']['bf16']:.0f} |")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "calls": args.calls,
                                         "warmup": args.warmup, "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
