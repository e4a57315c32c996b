"""Tune CALF's lookback and learning rate on ETTh1 with sktime's ForecastingGridSearchCV.

    python examples/sktime_grid_search.py [--data-dir ../shared/data] [--epochs 2] [--fast]

ETTh1 (7 columns, hourly) is read from ``--data-dir`` (or ``$CALF_DATA_DIR``) or downloaded from
its canonical source. A short stretch of it (``--rows`` hours) is split into a training part and the
last ``--horizon`` hours; ``ForecastingGridSearchCV`` scores every (seq_len, learning_rate) pair on
expanding windows of the training part, refits the best pair on all of it, and the forecast of
the held-out hours is plotted to a PNG beside a seasonal-naive baseline (the same hour one day
earlier).

The backbone is pre-trained GPT-2 (its first ``--n-layers`` blocks) when its weights can be had (hub
or cache); offline, the example says so in one line and continues with GPT-2's architecture randomly
initialised. The library itself never falls back. The defaults finish in a few minutes on two CPU
cores; ``--fast`` uses the tiny test backbone for one epoch on 200 hours (seconds; what the test
suite runs).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from example_backbone import pretrained_or_random

logger = logging.getLogger("calf_sktime_grid_search")


def load_ett_frame(data_dir: Path | None, rows: int) -> pd.DataFrame:
    """The first ``rows`` hours of ETTh1 as a DataFrame with an hourly DatetimeIndex."""
    from calf_forecaster.datasets import load_ett

    table = load_ett("ETTh1", data_dir)
    index = pd.DatetimeIndex(table.timestamps, name="date")
    frame = pd.DataFrame(table.values[:rows], index=index[:rows], columns=list(table.columns))
    return frame.asfreq("h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding ett/ETTh1.csv (default: the search order of "
                             "calf_forecaster.paths: $CALF_DATA_DIR, ../shared/data beside a "
                             "checkout, the download cache)")
    parser.add_argument("--rows", type=int, default=400, help="hours of ETTh1 used (from its start)")
    parser.add_argument("--horizon", type=int, default=24, help="hours forecast")
    parser.add_argument("--backbone", default="gpt2")
    parser.add_argument("--n-layers", type=int, default=2, help="backbone blocks kept")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--fast", action="store_true",
                        help="tiny test backbone, 1 epoch, 200 hours, horizon 8 (seconds)")
    parser.add_argument("--output", type=Path, default=Path("outputs/sktime_grid_search.png"))
    args = parser.parse_args()
    if args.fast:
        args.rows, args.horizon, args.epochs = 200, 8, 1
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    import pytorch_lightning  # noqa: F401  (configures its loggers on import; quieted below)
    from sktime.forecasting.model_selection import ForecastingGridSearchCV
    from sktime.forecasting.naive import NaiveForecaster
    from sktime.performance_metrics.forecasting import MeanAbsoluteError
    from sktime.split import ExpandingWindowSplitter, temporal_train_test_split

    from calf_forecaster.sktime import CALFForecaster

    for noisy in ("pytorch_lightning", "lightning", "calf_forecaster"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    y = load_ett_frame(args.data_dir, args.rows)
    fh = list(range(1, args.horizon + 1))
    y_train, y_test = temporal_train_test_split(y, test_size=args.horizon)

    with tempfile.TemporaryDirectory() as workdir:
        if args.fast:
            from calf_forecaster.testing import TINY_SETTINGS, tiny_backbone

            backbone, pretrained = tiny_backbone(), True
            sizes = {key: value for key, value in TINY_SETTINGS.items()
                     if key not in ("seq_len", "pred_len")}
            grid = {"seq_len": [16, 32], "learning_rate": [1e-4, 5e-4]}
            about = "tiny random test backbone, 1 epoch (--fast: not a result)"
        else:
            backbone, pretrained = pretrained_or_random(args.backbone, Path(workdir))
            sizes = {"n_layers": args.n_layers}
            grid = {"seq_len": [48, 96], "learning_rate": [1e-4, 5e-4]}
            weights = "pre-trained GPT-2" if pretrained else "GPT-2 architecture, random init"
            about = f"{weights}, first {args.n_layers} blocks, {args.epochs} epochs per fit"
        forecaster = CALFForecaster(
            backbone=backbone, pretrained=pretrained, **sizes,
            max_epochs=args.epochs, batch_size=64, validation_size=0.2,
            trainer_kwargs={"accelerator": "cpu"}, random_state=args.seed,
        )
        # two folds: forecasts of the horizon after the training part's last two horizons
        cv = ExpandingWindowSplitter(fh=fh, initial_window=len(y_train) - 2 * args.horizon,
                                     step_length=args.horizon)
        search = ForecastingGridSearchCV(forecaster, cv=cv, scoring=MeanAbsoluteError(),
                                         backend=None, param_grid=grid)
        started = time.perf_counter()
        search.fit(y_train, fh=fh)
        y_pred = search.predict()
        elapsed = time.perf_counter() - started
    baseline = NaiveForecaster(strategy="last", sp=24).fit(y_train, fh=fh).predict()

    results = search.cv_results_.sort_values("rank_test_MeanAbsoluteError")
    logger.info("ETTh1, %d hours x %d columns, horizon %d, backbone: %s: "
                "grid search of %d candidates x %d folds in %.0fs",
                len(y_train), y.shape[1], args.horizon, about,
                len(results), cv.get_n_splits(y_train), elapsed)
    for _, row in results.iterrows():
        logger.info("  %-48s mean CV MAE %.4f", row["params"], row["mean_test_MeanAbsoluteError"])
    logger.info("best params: %s", search.best_params_)
    mae = MeanAbsoluteError()
    logger.info("held-out %d hours, all columns: CALF MAE %.4f, seasonal naive MAE %.4f",
                args.horizon, mae(y_test, y_pred), mae(y_test, baseline))
    plot(y_train["OT"].iloc[-4 * args.horizon:], y_test["OT"], y_pred["OT"], baseline["OT"],
         f"ETTh1 OT, last {args.horizon} hours held out, best {search.best_params_}\n"
         f"CALF: {about}", args.output)
    logger.info("plot written to %s", args.output)


def plot(history: pd.Series, actual: pd.Series, forecast: pd.Series, baseline: pd.Series,
         title: str, path: Path) -> None:
    """History, held-out truth, CALF's and the baseline's forecast of one column, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(10, 4))
    axis.plot(history.index, history.to_numpy(), color="0.4", label="history")
    axis.plot(actual.index, actual.to_numpy(), color="black", marker=".", label="actual")
    axis.plot(forecast.index, forecast.to_numpy(), color="tab:red", marker=".",
              label="CALF forecast")
    axis.plot(baseline.index, baseline.to_numpy(), color="tab:blue", linestyle=":",
              label="seasonal naive (same hour, day before)")
    axis.set(title=title, xlabel="time (hourly)", ylabel="OT: oil temperature (°C)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: hides nothing
    figure.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)


if __name__ == "__main__":
    main()
