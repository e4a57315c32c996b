"""Tune CALF's lookback and learning rate on ETTh1 with sktime's ForecastingGridSearchCV.

    python examples/sktime_grid_search.py [--data-dir ../shared/data] [--epochs 2]

ETTh1 (7 columns, hourly) is read from ``--data-dir`` (or ``$CALF_DATA_DIR``) or downloaded from
its canonical source. A short stretch of it (``--rows`` hours) is split into a training part and the
last ``--horizon`` hours; ``ForecastingGridSearchCV`` scores every (seq_len, learning_rate) pair on
expanding windows of the training part, refits the best pair on all of it, and the forecast of
the held-out hours is plotted with sktime's ``plot_series`` to a PNG.

The backbone is pre-trained GPT-2 (its first ``--n-layers`` blocks) when its weights can be had (hub
or cache); offline, the example says so in one line and continues with GPT-2's architecture randomly
initialised. The library itself never falls back. The defaults finish in a few minutes on two CPU
cores.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from example_backbone import pretrained_or_random

logger = logging.getLogger("calf_sktime_grid_search")
REPO_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def load_ett_frame(data_dir: Path | None, rows: int) -> pd.DataFrame:
    """The first ``rows`` hours of ETTh1 as a DataFrame with an hourly DatetimeIndex."""
    from calf_forecaster.datasets import load_ett

    table = load_ett("ETTh1", data_dir)
    index = pd.DatetimeIndex(table.timestamps, name="date")
    frame = pd.DataFrame(table.values[:rows], index=index[:rows], columns=list(table.columns))
    return frame.asfreq("h")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path,
                        default=os.environ.get("CALF_DATA_DIR")
                        or (REPO_DATA if REPO_DATA.is_dir() else None),
                        help="folder holding ett/ETTh1.csv (default: $CALF_DATA_DIR, ../shared/data)")
    parser.add_argument("--rows", type=int, default=400, help="hours of ETTh1 used (from its start)")
    parser.add_argument("--horizon", type=int, default=24, help="hours forecast")
    parser.add_argument("--backbone", default="gpt2")
    parser.add_argument("--n-layers", type=int, default=2, help="backbone blocks kept")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--output", type=Path, default=Path("outputs/sktime_grid_search.png"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    import pytorch_lightning  # noqa: F401  (configures its loggers on import; quieted below)
    from sktime.forecasting.model_selection import ForecastingGridSearchCV
    from sktime.performance_metrics.forecasting import MeanAbsoluteError
    from sktime.split import ExpandingWindowSplitter, temporal_train_test_split

    from calf_forecaster.sktime import CALFForecaster

    for noisy in ("pytorch_lightning", "lightning", "calf_forecaster"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    y = load_ett_frame(args.data_dir, args.rows)
    fh = list(range(1, args.horizon + 1))
    y_train, y_test = temporal_train_test_split(y, test_size=args.horizon)

    with tempfile.TemporaryDirectory() as workdir:
        backbone, pretrained = pretrained_or_random(args.backbone, Path(workdir))
        forecaster = CALFForecaster(
            backbone=backbone, pretrained=pretrained, n_layers=args.n_layers,
            max_epochs=args.epochs, batch_size=64, validation_size=0.2,
            trainer_kwargs={"enable_progress_bar": False, "accelerator": "cpu"},
            random_state=args.seed,
        )
        # two folds: forecasts of the horizon after the training part's last two horizons
        cv = ExpandingWindowSplitter(fh=fh, initial_window=len(y_train) - 2 * args.horizon,
                                     step_length=args.horizon)
        search = ForecastingGridSearchCV(
            forecaster, cv=cv, scoring=MeanAbsoluteError(), backend=None,
            param_grid={"seq_len": [48, 96], "learning_rate": [1e-4, 5e-4]},
        )
        started = time.perf_counter()
        search.fit(y_train, fh=fh)
        y_pred = search.predict()
        elapsed = time.perf_counter() - started

    results = search.cv_results_.sort_values("rank_test_MeanAbsoluteError")
    logger.info("ETTh1, %d hours x %d columns, horizon %d, %s backbone (%d blocks): "
                "grid search of %d candidates x %d folds in %.0fs",
                len(y_train), y.shape[1], args.horizon,
                "pre-trained" if pretrained else "randomly initialised", args.n_layers,
                len(results), cv.get_n_splits(y_train), elapsed)
    for _, row in results.iterrows():
        logger.info("  %-48s mean CV MAE %.4f", row["params"], row["mean_test_MeanAbsoluteError"])
    logger.info("best params: %s", search.best_params_)
    test_mae = MeanAbsoluteError()(y_test, y_pred)
    logger.info("held-out %d hours, all columns: MAE %.4f", args.horizon, test_mae)

    import matplotlib

    matplotlib.use("Agg")
    from sktime.utils.plotting import plot_series

    history = y_train["OT"].iloc[-4 * args.horizon:]
    figure, _ = plot_series(history, y_test["OT"], y_pred["OT"],
                            labels=["history", "actual", "CALF forecast"],
                            title=f"ETTh1 OT, best {search.best_params_}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=120, bbox_inches="tight")
    logger.info("plot written to %s", args.output)


if __name__ == "__main__":
    main()
