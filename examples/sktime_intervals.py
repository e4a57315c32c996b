"""Prediction intervals with sktime: CALF's quantile head on ETTh1, the 80% interval plotted.

    python examples/sktime_intervals.py [--data-dir ../shared/data] [--epochs 3] [--fast]

ETTh1's oil temperature ``OT`` and its six load columns are read from ``--data-dir`` (default: the
search order of ``calf_forecaster.paths``). ``CALFForecaster(quantiles=(0.1, 0.5, 0.9))`` is fitted
on the first ``--rows`` hours with the load columns as exogenous ``X`` (extra tokens before the
target's), and forecasts the next ``--horizon`` hours; ``predict_interval(coverage=0.8)`` gives
the interval between the 10% and 90% quantiles. The interval is plotted against the actual values
and a seasonal-naive baseline (the same hour one day earlier), and its empirical coverage is
printed.

The backbone is GPT-2's architecture with random weights and 2 blocks (offline; the published
setting is pre-trained ``backbone="gpt2"``); ``--fast`` uses the tiny test backbone for one epoch
(seconds; what the test suite runs).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

logger = logging.getLogger("calf_sktime_intervals")


def plot(history: pd.Series, actual: pd.Series, median: pd.Series, lower: pd.Series,
         upper: pd.Series, naive: pd.Series, about: str, path: Path) -> None:
    """The last day of history, the actual values, the median, the 80% band and the baseline."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(9, 4))
    axis.plot(history.index, history.to_numpy(), color="0.45", label="history")
    axis.plot(actual.index, actual.to_numpy(), color="black", label="actual")
    axis.fill_between(median.index, lower.to_numpy(), upper.to_numpy(), color="tab:red",
                      alpha=0.2, label="CALF 80% interval (q0.1-q0.9)")
    axis.plot(median.index, median.to_numpy(), color="tab:red", label="CALF median")
    axis.plot(naive.index, naive.to_numpy(), color="tab:blue", linestyle=":",
              label="seasonal naive (a day earlier)")
    axis.set(title=f"ETTh1 oil temperature, {len(actual)}-hour forecast\n{about}",
             xlabel="time (hourly)", ylabel="OT (degrees Celsius)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--rows", type=int, default=600, help="hours used for training")
    parser.add_argument("--horizon", type=int, default=24)
    parser.add_argument("--seq-len", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--fast", action="store_true", help="tiny test backbone, 1 epoch")
    parser.add_argument("--output", type=Path, default=Path("outputs/sktime_intervals.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    from calf_forecaster.datasets import load_ett
    from calf_forecaster.sktime import CALFForecaster

    table = load_ett("ETTh1", args.data_dir)
    frame = pd.DataFrame(table.values, index=pd.DatetimeIndex(table.timestamps, name="date"),
                         columns=list(table.columns)).asfreq("h")
    frame = frame.iloc[:args.rows + args.horizon]
    y, X = frame[["OT"]], frame.drop(columns="OT")
    y_train, y_test = y.iloc[:args.rows], y.iloc[args.rows:]
    fh = list(range(1, args.horizon + 1))

    with tempfile.TemporaryDirectory() as workdir:
        if args.fast:
            from calf_forecaster.testing import TINY_SETTINGS, tiny_backbone

            network = {k: v for k, v in TINY_SETTINGS.items() if k not in ("seq_len", "pred_len")}
            network.update(backbone=tiny_backbone(), seq_len=16)
            epochs, about = 1, "tiny random test backbone, 1 epoch (--fast: not a result)"
        else:
            from calf_forecaster.backbone import save_backbone_config

            network = {"backbone": str(save_backbone_config(Path(workdir) / "gpt2", n_layer=2)),
                       "pretrained": False, "n_layers": 2, "seq_len": args.seq_len}
            epochs = args.epochs
            about = (f"GPT-2 architecture, 2 blocks, random init, {epochs} epochs on "
                     f"{args.rows} hours (a short run, not the paper's recipe)")
        forecaster = CALFForecaster(quantiles=(0.1, 0.5, 0.9), max_epochs=epochs,
                                    random_state=args.seed, batch_size=64, **network)
        forecaster.fit(y_train, X=X.iloc[:args.rows], fh=fh)
        median = forecaster.predict(X=X.iloc[args.rows:])
        interval = forecaster.predict_interval(X=X.iloc[args.rows:], coverage=0.8)

    lower, upper = interval.iloc[:, 0], interval.iloc[:, 1]
    actual = y_test["OT"]
    covered = float(((actual >= lower) & (actual <= upper)).mean())
    naive = pd.Series(y_train["OT"].to_numpy()[-24:][np.arange(args.horizon) % 24],
                      index=actual.index)
    calf_mae = float((median["OT"] - actual).abs().mean())
    naive_mae = float((naive - actual).abs().mean())
    print(f"ETTh1 OT, {args.rows} training hours, horizon {args.horizon}; backbone: {about}")
    print(f"  CALF median     MAE {calf_mae:.4f}")
    print(f"  seasonal naive  MAE {naive_mae:.4f}")
    print(f"  80% interval covers {covered:.0%} of the {len(actual)} held-out hours")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    plot(y_train["OT"].iloc[-48:], actual, median["OT"], lower, upper, naive, about, args.output)
    print(f"  plot written to {args.output}")


if __name__ == "__main__":
    main()
