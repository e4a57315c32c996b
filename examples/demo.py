"""Fit CALF on ETTh1 (standard split), print test MSE/MAE against a baseline, plot one forecast.

    python examples/demo.py [--data-dir ../shared/data] [--epochs 2] [--stride 12] [--fast]

ETTh1 is read from ``--data-dir`` (default: the search order of ``calf_forecaster.paths``:
``$CALF_DATA_DIR``, ``../shared/data`` beside a checkout, the download cache) or downloaded from
its canonical source. The backbone is pre-trained GPT-2 when its weights can be had (hub or
cache); offline, the demo says so in one line and continues with GPT-2's architecture randomly
initialised. The library itself never falls back: ``CALF.from_pretrained(CALFConfig())`` raises
an error that says how to fix it.

The default is a short run (every ``--stride``-th training window, ``--epochs`` epochs) that ends
in a few minutes on two CPU cores; ``--stride 1 --epochs 100`` is the paper's recipe. ``--fast``
uses the tiny test backbone for one epoch (seconds; what the test suite runs).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from example_backbone import pretrained_or_random

from calf_forecaster import CALFConfig, TrainingConfig
from calf_forecaster.datasets import ett_split, load_ett
from calf_forecaster.metrics import mae, mse
from calf_forecaster.pipeline import CALFPipeline
from calf_forecaster.preprocessing import ChannelScaler, sliding_windows

logger = logging.getLogger("calf_demo")


def plot_forecast(history: np.ndarray, actual: np.ndarray, forecast: np.ndarray,
                  baseline: np.ndarray, column: str, about: str, path: Path) -> None:
    """Lookback, truth, CALF's and the baseline's forecast of one window and one column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 3.8))
    past = np.arange(-len(history), 0)
    future = np.arange(len(actual))
    axis.plot(past, history, color="0.4", label="lookback")
    axis.plot(future, actual, color="black", label="actual")
    axis.plot(future, forecast, color="tab:red", label="CALF forecast")
    axis.plot(future, baseline, color="tab:blue", linestyle=":", label="last value (baseline)")
    axis.axvline(0, color="0.8", linestyle="--")
    axis.set(title=f"ETTh1 {column}, last test window\n{about}",
             xlabel="hours from the forecast origin", ylabel=f"{column} (standardised)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: hides nothing
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--backbone", default="gpt2")
    parser.add_argument("--seq-len", type=int, default=96)
    parser.add_argument("--pred-len", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--stride", type=int, default=12, help="use every n-th training window")
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--fast", action="store_true", help="tiny backbone, 1 epoch (seconds)")
    parser.add_argument("--output", type=Path, default=Path("outputs/demo_forecast.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    table = load_ett("ETTh1", args.data_dir)
    split = ett_split("ETTh1", args.seq_len)
    scaler = ChannelScaler().fit(table.values[slice(*split.train)])  # train split only
    scaled = scaler.transform(table.values)
    test_x, test_y = sliding_windows(scaled[slice(*split.test)], args.seq_len, args.pred_len)

    with tempfile.TemporaryDirectory() as workdir:
        if args.fast:
            from calf_forecaster.testing import tiny_config

            config = tiny_config(seq_len=args.seq_len, pred_len=args.pred_len)
            epochs, about = 1, "tiny random test backbone, 1 epoch (--fast: not a result)"
        else:
            backbone, pretrained = pretrained_or_random(args.backbone, Path(workdir))
            config = CALFConfig(seq_len=args.seq_len, pred_len=args.pred_len, backbone=backbone,
                                pretrained=pretrained)
            weights = "pre-trained GPT-2" if pretrained else "GPT-2 architecture, random init"
            epochs = args.epochs
            about = (f"{weights}, {epochs} epochs on every {args.stride}th training window "
                     f"(a short run, not the paper's recipe)")
        training = TrainingConfig(max_epochs=epochs, seed=args.seed, scale=False)
        pipeline = CALFPipeline.build(config, training)
        started = time.perf_counter()
        run = pipeline.fit([scaled[slice(*split.train)]],
                           validation=[scaled[slice(*split.validation)]], stride=args.stride)
        fitted = time.perf_counter() - started
    forecast = pipeline.forecast(test_x)
    naive = np.repeat(test_x[:, -1:, :], args.pred_len, axis=1)  # last value carried forward
    print(f"ETTh1, lookback {args.seq_len}, horizon {args.pred_len}, {run.n_train_windows} "
          f"training windows x {run.epochs} epochs in {fitted:.0f}s, {len(test_x)} test windows")
    print(f"  backbone: {about}")
    print(f"  CALF        test MSE {mse(forecast, test_y):.4f}  MAE {mae(forecast, test_y):.4f}")
    print(f"  last value  test MSE {mse(naive, test_y):.4f}  MAE {mae(naive, test_y):.4f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    column = table.columns.index("OT")
    plot_forecast(test_x[-1, :, column], test_y[-1, :, column], forecast[-1, :, column],
                  naive[-1, :, column], "OT", about, args.output)
    print(f"  forecast plot written to {args.output}")


if __name__ == "__main__":
    main()
