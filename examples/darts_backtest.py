"""Backtest CALF on ETTh1 with darts, against NLinear and two naive baselines.

The standard long-term protocol, in darts terms: the first 12 months of ETTh1 train, the next 4
validate, the next 4 test (rows 8640 / 11520 / 14400); a ``Scaler`` fitted on the training rows;
``historical_forecasts`` of every model over the test rows (no retraining for the global models,
the naive ones refit at every forecast point); MSE and MAE on the scaled data, averaged over the
forecast windows. A PNG shows the last test window of the ``OT`` column for every model.

By default CALF runs on a tiny randomly initialised GPT-2 (built from a config, nothing is
downloaded) with short training, so the whole script takes a few minutes on a CPU. ``--fast`` uses
the test suite's tiny GPT-2 for one epoch on the last 1024 training hours and the first 10 test days
(seconds; what the test suite runs; not a result). ``--reference``
switches to the published configuration (pre-trained GPT-2 small from the Hugging Face hub, 6
blocks, 500 prototypes, batch 256, up to 100 epochs with early stopping after 10) and
``--llm-mode`` to Tan et al.'s ablations.

Usage::

    python examples/darts_backtest.py --data-dir ../shared/data
    python examples/darts_backtest.py --fast
    python examples/darts_backtest.py --reference --stride 1 --accelerator gpu
    python examples/darts_backtest.py --llm-mode attention --output outputs/attention.png
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from calf_forecaster.datasets import ett_split
from calf_forecaster.testing import TINY_GPT2

logger = logging.getLogger("darts_backtest")

REPO_ROOT = Path(__file__).resolve().parents[1]
_SPLIT = ett_split("ETTh1", seq_len=1)  # the standard 12 / 4 / 4 months of hours (their ends)
TRAIN_END, VAL_END, TEST_END = _SPLIT.train[1], _SPLIT.validation[1], _SPLIT.test[1]
TARGET = "OT"

#: The small default: the test GPT-2 of calf_forecaster.testing, twice as wide, with a larger
#: vocabulary (more word prototypes), random weights.
TINY_BACKBONE = {**TINY_GPT2, "n_embd": 64, "vocab_size": 1024}
TINY_CALF = {"n_layers": 2, "n_heads": 4, "n_prototypes": 32, "encoder_ff_dim": 128,
             "pretrained": False}
#: ``docs/method.md``: GPT-2 small, K=6, P=500; batch 256, <= 100 epochs, patience 10 (ETTh1).
REFERENCE_CALF = {"backbone": "gpt2", "n_layers": 6, "n_heads": 12, "n_prototypes": 500,
                  "encoder_ff_dim": 2048, "pretrained": True}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None,
                        help="folder holding ett/ETTh1.csv (default: the search order of "
                             "calf_forecaster.paths: $CALF_DATA_DIR, ../shared/data beside a "
                             "checkout, the download cache)")
    parser.add_argument("--input-chunk-length", type=int, default=96, help="lookback L")
    parser.add_argument("--horizon", type=int, default=96,
                        help="output_chunk_length and forecast horizon H")
    parser.add_argument("--stride", type=int, default=24,
                        help="steps between forecast points in the test rows (1: every window, "
                             "as in the published protocol)")
    parser.add_argument("--fast", action="store_true",
                        help="tiny test backbone, 1 epoch, L=16, H=8, short train and test rows")
    parser.add_argument("--reference", action="store_true",
                        help="CALF's published configuration (downloads GPT-2 small once)")
    parser.add_argument("--backbone", default=None,
                        help="Hugging Face name or local directory of the backbone (default: tiny "
                             "random GPT-2, or 'gpt2' with --reference)")
    parser.add_argument("--llm-mode", default="llm",
                        choices=["llm", "none", "attention", "transformer"],
                        help="'llm' is CALF; the others are Tan et al.'s ablations")
    parser.add_argument("--epochs", type=int, default=None,
                        help="most training epochs (default 5, or 100 with --reference)")
    parser.add_argument("--patience", type=int, default=10,
                        help="early stopping on the validation loss")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="training batch size (default 64, or 256 with --reference)")
    parser.add_argument("--seed", type=int, default=2021)
    parser.add_argument("--accelerator", default="cpu", help="Lightning accelerator: cpu or gpu")
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "outputs" / "darts_backtest.png",
                        help="PNG of the last test window of OT")
    args = parser.parse_args(argv)
    if args.fast:
        if args.reference:
            parser.error("--fast and --reference exclude each other")
        args.input_chunk_length, args.horizon, args.epochs = 16, 8, 1
    return args


def load_etth1(data_dir: Path) -> Any:
    """ETTh1's first 20 months as a float32 darts ``TimeSeries`` (7 columns, hourly)."""
    from darts import TimeSeries

    path = data_dir / "ett" / "ETTh1.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; pass --data-dir (the folder holding ett/)")
    frame = pd.read_csv(path, parse_dates=["date"], index_col="date").iloc[:TEST_END]
    return TimeSeries.from_dataframe(frame.astype(np.float32), freq="h")


def calf_settings(args: argparse.Namespace, work_dir: Path) -> dict[str, Any]:
    """CALF's constructor arguments: tiny random backbone by default, the reference if asked."""
    from calf_forecaster.backbone import save_backbone_config

    if args.reference:
        settings: dict[str, Any] = dict(REFERENCE_CALF)
    elif args.fast:
        from calf_forecaster.testing import TINY_SETTINGS, tiny_backbone

        settings = {key: value for key, value in TINY_SETTINGS.items()
                    if key not in ("seq_len", "pred_len")}
        settings["backbone"] = tiny_backbone()
    else:
        settings = dict(TINY_CALF)
        settings["backbone"] = str(save_backbone_config(work_dir / "tiny-gpt2", "gpt2",
                                                        **TINY_BACKBONE))
    if args.backbone is not None:
        settings["backbone"] = args.backbone
    settings["llm_mode"] = args.llm_mode
    return settings


def trainer_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Lightning settings shared by the global models: early stopping on ``val_loss``."""
    from pytorch_lightning.callbacks import EarlyStopping

    return {"accelerator": args.accelerator, "enable_progress_bar": False,
            "enable_model_summary": False, "logger": False,
            "callbacks": [EarlyStopping("val_loss", patience=args.patience, mode="min")]}


def about_calf(args: argparse.Namespace, epochs: int) -> str:
    """What CALF's backbone and training were, for the plot's title."""
    if args.fast:
        return "tiny random test backbone, 1 epoch (--fast: not a result)"
    if args.reference:
        backbone = f"{args.backbone or 'gpt2'}, pre-trained, 6 blocks"
    else:
        backbone = args.backbone or "tiny random GPT-2 (2 blocks, width 64)"
    return f"{backbone}, up to {epochs} epochs, llm_mode={args.llm_mode!r}"


def backtest(name: str, model: Any, series: Any, args: argparse.Namespace,
             retrain: bool, start: int = VAL_END) -> tuple[list[Any], float, float, float]:
    """Historical forecasts over the test rows; (forecasts, MSE, MAE, seconds)."""
    from darts.metrics import mae, mse

    started = time.perf_counter()
    forecasts = model.historical_forecasts(
        series, start=start, start_format="position", forecast_horizon=args.horizon,
        stride=args.stride, retrain=retrain, last_points_only=False, overlap_end=False,
        verbose=False)
    seconds = time.perf_counter() - started
    errors = model.backtest(series, historical_forecasts=forecasts, metric=[mse, mae],
                            last_points_only=False)
    logger.info("%-14s %4d windows  MSE %.4f  MAE %.4f  (%.1f s)", name, len(forecasts),
                errors[0], errors[1], seconds)
    return forecasts, float(errors[0]), float(errors[1]), seconds


def plot(series: Any, forecasts: dict[str, Any], path: Path, context: int, about: str) -> None:
    """The last test window of ``OT``: actuals and every model's forecast, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    last = {name: windows[-1][TARGET] for name, windows in forecasts.items()}
    first = next(iter(last.values()))
    start = first.start_time()
    actual = series[TARGET].slice(start - context * series.freq, first.end_time())
    figure, axis = plt.subplots(figsize=(11, 4))
    axis.plot(actual.time_index, actual.values()[:, 0], color="black", label="actual")
    styles = {"CALF": {"color": "tab:red", "linewidth": 2}}
    for name, forecast in last.items():
        axis.plot(forecast.time_index, forecast.values()[:, 0], label=name,
                  **styles.get(name, {"linestyle": "--"}))
    axis.axvline(start, color="grey", linestyle=":")
    axis.set(title=f"ETTh1 {TARGET}, last test window ({len(first)} hours ahead)\nCALF: {about}",
             xlabel="time (hourly)",
             ylabel=f"{TARGET}: oil temperature\n(standardised on the training rows)")
    axis.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)  # outside: hides nothing
    figure.autofmt_xdate()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
    logger.info("plot written to %s", path)


def main(argv: list[str] | None = None) -> dict[str, tuple[float, float]]:
    """Run the backtest; return ``{model: (MSE, MAE)}``."""
    from darts.dataprocessing.transformers import Scaler
    from darts.models import NaiveDrift, NaiveSeasonal, NLinearModel
    from sklearn.preprocessing import StandardScaler

    from calf_forecaster.darts import CALFModel

    args = parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (100 if args.reference else 5)
    batch_size = args.batch_size if args.batch_size is not None else (
        256 if args.reference else 64)
    raw = load_etth1(args.data_dir)
    # --fast: the last 1024 training hours, the first 10 days of the test months
    first, last = (TRAIN_END - 1024, VAL_END + 240) if args.fast else (0, TEST_END)
    raw = raw[first:last]
    train_end, val_end = TRAIN_END - first, VAL_END - first
    series = Scaler(StandardScaler()).fit(raw[:train_end]).transform(raw)  # train rows only
    train = series[:train_end]
    val = series[train_end - args.input_chunk_length:val_end]
    common = {"input_chunk_length": args.input_chunk_length, "output_chunk_length": args.horizon,
              "batch_size": batch_size, "n_epochs": epochs, "random_state": args.seed}

    results: dict[str, tuple[float, float]] = {}
    forecasts: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work_dir:
        calf = CALFModel(**common, **calf_settings(args, Path(work_dir)),
                         pl_trainer_kwargs=trainer_kwargs(args))
        nlinear = NLinearModel(**common, pl_trainer_kwargs=trainer_kwargs(args))
        for name, model in (("CALF", calf), ("NLinear", nlinear)):
            started = time.perf_counter()
            model.fit(train, val_series=val)
            logger.info("%-14s trained %d epochs in %.1f s", name, model.epochs_trained,
                        time.perf_counter() - started)
            windows, mse_value, mae_value, _ = backtest(name, model, series, args, retrain=False,
                                                        start=val_end)
            forecasts[name], results[name] = windows, (mse_value, mae_value)
    for name, model in (("NaiveSeasonal", NaiveSeasonal(K=24)), ("NaiveDrift", NaiveDrift())):
        windows, mse_value, mae_value, _ = backtest(name, model, series, args, retrain=True,
                                                    start=val_end)
        forecasts[name], results[name] = windows, (mse_value, mae_value)

    logger.info("\n| model | MSE | MAE |\n|---|---|---|\n%s", "\n".join(
        f"| {name} | {m:.4f} | {a:.4f} |" for name, (m, a) in results.items()))
    plot(series, forecasts, args.output, context=2 * args.input_chunk_length,
         about=about_calf(args, epochs))
    return results


if __name__ == "__main__":
    from calf_forecaster.training import quiet_lightning

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    logging.getLogger("darts").setLevel(logging.WARNING)
    with quiet_lightning():  # no Lightning banners, summaries or progress bars (NLinear's too)
        main()
