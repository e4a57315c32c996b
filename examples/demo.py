"""Fit CALF on ETTh1 (standard split), print test MSE/MAE, and plot one forecast to a PNG.

    python examples/demo.py [--data-dir ../shared/data] [--epochs 2] [--stride 12]

ETTh1 is read from ``--data-dir`` (or ``$CALF_DATA_DIR``) or downloaded from its canonical source.
The backbone is pre-trained GPT-2 when its weights can be had (hub or cache); offline, the demo says
so in one line and continues with GPT-2's architecture randomly initialised. The library itself
never falls back: ``CALF(CALFConfig(backbone="gpt2"))`` raises an error that says how to fix it.

The default is a short run (every ``--stride``-th training window, ``--epochs`` epochs) that ends in
a few minutes on two CPU cores; ``--stride 1 --epochs 100`` is the paper's recipe.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

import numpy as np
from example_backbone import pretrained_or_random

from calf_forecaster import CALF, CALFConfig, TrainingConfig
from calf_forecaster.data import ChannelScaler, WindowDataset, sliding_windows
from calf_forecaster.datasets import ett_split, load_ett
from calf_forecaster.metrics import mae, mse
from calf_forecaster.training import predict_windows, seed_everything, train_calf

logger = logging.getLogger("calf_demo")
REPO_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def plot_forecast(history: np.ndarray, actual: np.ndarray, forecast: np.ndarray, column: str,
                  path: Path) -> None:
    """Lookback, truth and forecast of one window and one column, saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 3.5))
    past = np.arange(-len(history), 0)
    future = np.arange(len(actual))
    axis.plot(past, history, color="0.4", label="lookback")
    axis.plot(future, actual, color="black", label="actual")
    axis.plot(future, forecast, color="tab:red", label="CALF forecast")
    axis.axvline(0, color="0.8", linestyle="--")
    axis.set(title=f"ETTh1 {column}: last test window (standardised)", xlabel="hours from origin")
    axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=REPO_DATA if REPO_DATA.is_dir() else None)
    parser.add_argument("--backbone", default="gpt2")
    parser.add_argument("--seq-len", type=int, default=96)
    parser.add_argument("--pred-len", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--stride", type=int, default=12, help="use every n-th training window")
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--output", type=Path, default=Path("outputs/demo_forecast.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    table = load_ett("ETTh1", args.data_dir)
    split = ett_split("ETTh1", args.seq_len)
    values = table.values
    scaler = ChannelScaler().fit(values[slice(*split.train)])
    scaled = scaler.transform(values)
    train = WindowDataset(scaled[slice(*split.train)], args.seq_len, args.pred_len, args.stride)
    validation = WindowDataset(scaled[slice(*split.validation)], args.seq_len, args.pred_len,
                               args.stride)
    test_x, test_y = sliding_windows(scaled[slice(*split.test)], args.seq_len, args.pred_len)

    with tempfile.TemporaryDirectory() as workdir:
        backbone, pretrained = pretrained_or_random(args.backbone, Path(workdir))
        config = CALFConfig(seq_len=args.seq_len, pred_len=args.pred_len, backbone=backbone,
                            pretrained=pretrained)
        recipe = TrainingConfig(max_epochs=args.epochs, seed=args.seed)
        seed_everything(args.seed)
        model = CALF(config)
        started = time.perf_counter()
        train_calf(model, train, validation, recipe, {"enable_progress_bar": False})
        fitted = time.perf_counter() - started
    forecast = predict_windows(model, test_x)
    naive = np.repeat(test_x[:, -1:, :], args.pred_len, axis=1)  # last value carried forward
    print(f"ETTh1, lookback {args.seq_len}, horizon {args.pred_len}, {len(train)} training "
          f"windows x {args.epochs} epochs in {fitted:.0f}s, {len(test_x)} test windows")
    print(f"  backbone: {config.backbone if config.pretrained else 'GPT-2 architecture, random init'}")
    print(f"  CALF        test MSE {mse(forecast, test_y):.4f}  MAE {mae(forecast, test_y):.4f}")
    print(f"  last value  test MSE {mse(naive, test_y):.4f}  MAE {mae(naive, test_y):.4f}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    column = table.columns.index("OT")
    plot_forecast(test_x[-1, :, column], test_y[-1, :, column], forecast[-1, :, column], "OT",
                  args.output)
    print(f"  forecast plot written to {args.output}")


if __name__ == "__main__":
    main()
