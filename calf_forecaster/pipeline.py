"""The one pipeline under every entry point: fit a CALF network on arrays, forecast arrays.

Symbols: N series (or windows), T time steps, L lookback (``seq_len``), H horizon (``pred_len``),
M variates (columns), of which the last M_t are targets.

:class:`CALFPipeline` owns every step between a framework's containers and the network: seeded
construction (:func:`build_network`), input checks, column scaling, the validation split,
windowing, Lightning training with best-epoch restore (:func:`~calf_forecaster.training.fit_calf`),
prediction on the right device (restoring the network's), un-scaling, the finite-output check, and
persistence (``save``/``load`` and pickling hold the portable saved-model format, never the frozen
backbone). The sktime adapter, the examples and the benchmark harness call it; the darts adapter
uses the parts darts' own loop does not already own (:func:`build_network`, the recipe, the
checkpoint rule).

Examples
--------
>>> import numpy as np
>>> from calf_forecaster import CALFConfig, TrainingConfig
>>> from calf_forecaster.pipeline import CALFPipeline
>>> from calf_forecaster.testing import tiny_config
>>> series = [np.sin(np.arange(120.0) / 4)[:, None] * [1.0, 2.0]]  # one (T, M=2) series
>>> pipeline = CALFPipeline.build(tiny_config(seq_len=24, pred_len=6),
...                               TrainingConfig(max_epochs=1, seed=0))
>>> run = pipeline.fit(series)
>>> pipeline.forecast(series[0][None, -24:]).shape
(1, 6, 2)
"""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from calf_forecaster.config import CALFConfig, TrainingConfig
from calf_forecaster.model import CALF
from calf_forecaster.persistence import (
    deserialize_calf,
    read_model_files,
    serialize_calf,
    write_model_files,
)
from calf_forecaster.preprocessing import (
    ChannelScaler,
    WindowDataset,
    check_lengths,
    check_values,
    split_for_validation,
    warn_below_normalisation_floor,
)
from calf_forecaster.training import (
    NonFiniteForecastError,
    TrainingRun,
    check_windows,
    fit_calf,
    predict_windows,
)

logger = logging.getLogger(__name__)

#: Metadata key of the pipeline's own state inside a saved model's ``calf.json``.
PIPELINE_KEY = "pipeline"


def build_network(config: CALFConfig, seed: int | None) -> CALF:
    """Load the backbone and build a network whose initial weights depend on ``seed`` only.

    The global generator is forked, so seeding here leaves the caller's random state untouched;
    ``seed=None`` draws from it.
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        return CALF.from_pretrained(config)


def inference_device(trainer_kwargs: Mapping[str, Any] | None,
                     trained_on: str | None = None) -> torch.device:
    """Where to forecast: the device training ran on, else the one ``trainer_kwargs`` selects.

    The accelerator is resolved as Lightning resolves it (``"auto"``, its default: CUDA, then
    MPS, then the CPU); a device that is not available here (a model trained on a GPU, loaded on
    a CPU machine) falls back to the CPU.
    """
    if trained_on is not None and _available(torch.device(trained_on)):
        return torch.device(trained_on)
    accelerator = (trainer_kwargs or {}).get("accelerator", "auto")
    name = str(getattr(accelerator, "__class__", type(None)).__name__).lower() \
        if not isinstance(accelerator, str) else accelerator.lower()
    if "cuda" in name or "gpu" in name:
        candidates = ["cuda"]
    elif "mps" in name:
        candidates = ["mps"]
    elif name == "auto":
        candidates = ["cuda", "mps"]
    else:
        candidates = []
    for candidate in candidates:
        if _available(torch.device(candidate)):
            return torch.device(candidate)
    return torch.device("cpu")


def _available(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available()
    if device.type == "mps":
        return bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    return device.type == "cpu"


def check_series(series: Sequence[object], required: int, names: Sequence[str], what: str,
                 fix: str = "CALF does not pad short series: use a shorter seq_len or horizon, "
                            "or longer series.") -> list[np.ndarray]:
    """Validate every series (numeric, finite, (T, M), same M) and its length, before any work.

    Parameters
    ----------
    series
        Array-likes of shape (T_i,) or (T_i, M).
    required
        Time steps each series needs.
    names
        A name of each series for the errors (e.g. ``"y (series 'a')"``).
    what
        What the steps are needed for, e.g. ``"to fit (seq_len=96 + horizon 24)"``.
    fix
        What a too-short series should do.

    Returns
    -------
    list of numpy.ndarray
        The float64 (T, M) arrays.
    """
    if len(series) == 0:
        raise ValueError("no series given: pass at least one (T, M) array")
    arrays = [check_values(values, name) for values, name in zip(series, names)]
    widths = {a.shape[1] for a in arrays}
    if len(widths) > 1:
        raise ValueError(f"all series need the same number of columns, got {sorted(widths)}")
    check_lengths([len(a) for a in arrays], required, names, what, fix)
    return arrays


def check_variates(network: CALF, n_variates: int) -> None:
    """Refuse more variates than the backbone's position table holds, before any training."""
    limit = network.max_variates
    if limit is not None and n_variates > limit:
        raise ValueError(f"{n_variates} variates (columns, covariates included) exceed the "
                         f"position table of backbone {network.config.backbone!r}, which holds "
                         f"{limit}; use fewer columns or a backbone with more positions")


class CALFPipeline:
    """A CALF network with its data preparation and training recipe.

    Parameters
    ----------
    network
        The network (built with :func:`build_network` or loaded).
    training
        Losses, recipe, validation split, scaling and seed.
    scaler
        A fitted column scaler, or ``None`` (unfitted, or ``training.scale=False``).
    trainer_kwargs
        Extra ``pytorch_lightning.Trainer`` arguments for training (not modified).
    verbose
        Show Lightning's progress bar, model summary and messages while training.

    Attributes
    ----------
    trained_on
        Device of the last training run (``None`` before any); forecasts run there.
    last_run
        The :class:`~calf_forecaster.training.TrainingRun` of the last :meth:`fit`.
    """

    def __init__(self, network: CALF, training: TrainingConfig,
                 scaler: ChannelScaler | None = None,
                 trainer_kwargs: Mapping[str, Any] | None = None, verbose: bool = False) -> None:
        self.network = network
        self.training = training
        self.scaler = scaler
        self.trainer_kwargs = dict(trainer_kwargs or {})
        self.verbose = verbose
        self.trained_on: str | None = None
        self.last_run: TrainingRun | None = None
        #: How many of the last columns are targets (``None``: all); the others are covariates.
        self.n_targets: int | None = None

    @classmethod
    def build(cls, config: CALFConfig, training: TrainingConfig,
              trainer_kwargs: Mapping[str, Any] | None = None,
              verbose: bool = False) -> CALFPipeline:
        """A pipeline around a new network (backbone loaded, initial weights seeded)."""
        return cls(build_network(config, training.seed), training, None, trainer_kwargs, verbose)

    @property
    def config(self) -> CALFConfig:
        """The network's configuration."""
        return self.network.config

    # ------------------------------------------------------------------ fitting

    def fit(self, series: Sequence[np.ndarray], refit_scaler: bool = True,
            names: Sequence[str] | None = None, ckpt_path: str | None = None,
            validation: Sequence[np.ndarray] | None = None, stride: int = 1,
            n_targets: int | None = None) -> TrainingRun:
        """Train the network in place on every window of every series.

        Parameters
        ----------
        series
            (T_i, M) arrays with the same M columns (the last columns are the targets).
        n_targets
            The last ``n_targets`` columns are the targets, forecast and scored; the first
            ``M - n_targets`` are covariates, tokens seen by the network but never scored
            (placed first: the backbone is causal over tokens). ``None``: every column is a
            target. Stored: :meth:`forecast` returns the targets only.
        validation
            Validation series of a fixed protocol (each starting ``seq_len`` steps before its
            first scored step), scaled with the statistics of ``series``; default: the end of
            every series, as ``training.validation_size`` says.
        stride
            Keep every ``stride``-th training window (short runs; 1 is the protocol).
        refit_scaler
            Fit the column scaler on ``series`` (with ``training.scale``); ``False`` keeps the
            current one (continued training on new data, as sktime's ``update``).
        names
            Names of the series for error messages (default ``series[i]``).
        ckpt_path
            A Lightning checkpoint to resume from.

        Returns
        -------
        TrainingRun
            What was trained, for how long, where (0 epochs and windows with ``max_epochs=0``).
        """
        config, training = self.config, self.training
        names = list(names or [f"series[{i}]" for i in range(len(series))])
        arrays = check_series(series, config.seq_len + config.pred_len, names,
                              f"to train (seq_len={config.seq_len} + horizon {config.pred_len})")
        check_variates(self.network, arrays[0].shape[1])
        if n_targets is not None and not 1 <= n_targets <= arrays[0].shape[1]:
            raise ValueError(f"`n_targets`={n_targets} must lie in [1, {arrays[0].shape[1]}], "
                             f"the number of columns")
        self.n_targets = n_targets
        if refit_scaler:
            self.scaler = ChannelScaler().fit(arrays) if training.scale else None
        scaled = arrays if self.scaler is None else [self.scaler.transform(a) for a in arrays]
        if self.scaler is None:
            warn_below_normalisation_floor(scaled, "Rescale the data first (sktime: scale=True; "
                                                   "darts: darts' Scaler).")
        if training.max_epochs == 0:
            run = fit_calf(self.network, [], None, training)
            self.last_run = run
            return run
        train_series, val_series = scaled, []
        if validation is not None:
            held_out = check_series(validation, config.seq_len + config.pred_len,
                                    [f"validation[{i}]" for i in range(len(validation))],
                                    "for one validation window")
            val_series = held_out if self.scaler is None else [self.scaler.transform(a)
                                                               for a in held_out]
        elif training.validation_size:
            train_series, val_series = split_for_validation(
                scaled, training.validation_size, config.seq_len, config.pred_len)
            if not val_series:
                logger.warning("validation_size=%r leaves no series long enough for a validation "
                               "window; training %d epochs without early stopping",
                               training.validation_size, training.max_epochs)
        train_data = WindowDataset(train_series, config.seq_len, config.pred_len, stride,
                                   n_targets)
        val_data = (WindowDataset(val_series, config.seq_len, config.pred_len,
                                  n_targets=n_targets) if val_series else None)
        logger.info("training CALF on %d windows (%d validation) from %d series",
                    len(train_data), 0 if val_data is None else len(val_data), len(arrays))
        return self._train(train_data, val_data, ckpt_path)

    def fit_datasets(self, train_data: Dataset, validation_data: Dataset | None = None,
                     ckpt_path: str | None = None) -> TrainingRun:
        """Train on ready-made datasets, e.g. M4's sampler (docs/method.md §9), without scaling.

        For protocols whose samples are not the sliding windows of :meth:`fit`: the datasets'
        items are ``(x (L, M), y (H, M_t))`` or ``(x, y, x_mask, y_mask)`` (the target mask then
        weights the losses); no column scaler is fitted (the network still normalises every
        window) and ``training.validation_size`` is not used.

        Parameters
        ----------
        train_data
            Training samples (e.g. :class:`~calf_forecaster.datasets.M4TrainingDataset`).
        validation_data
            Samples for early stopping and the restored best epoch, or ``None`` (no early
            stopping: ``max_epochs`` are run).
        ckpt_path
            A Lightning checkpoint to resume from.

        Returns
        -------
        TrainingRun
        """
        self.scaler = None
        return self._train(train_data, validation_data, ckpt_path)

    def _train(self, train_data: Dataset, validation_data: Dataset | None,
               ckpt_path: str | None) -> TrainingRun:
        """Lightning training of the network, then stored on the CPU (portable); forecasts
        move it to ``trained_on`` and back."""
        run = fit_calf(self.network, train_data, validation_data, self.training,
                       self.trainer_kwargs, ckpt_path, self.verbose)
        self.network.to("cpu")
        self.trained_on = str(run.device)
        self.last_run = run
        return run

    # ------------------------------------------------------------------ forecasting

    def forecast(self, context: np.ndarray) -> np.ndarray:
        """Forecast (N, H, M) raw values from (N, L, M) raw context windows, float64.

        A quantile model (``config.quantiles``) forecasts (N, H, M, Q), non-decreasing along Q.
        After :meth:`fit` with ``n_targets``, only the last ``n_targets`` columns (the targets)
        are returned.

        Runs on the device training ran on (or the one ``trainer_kwargs`` selects), in the
        ``precision`` of ``trainer_kwargs`` (e.g. ``"bf16-mixed"``: autocast, as in training),
        then puts the network back where it was.

        Raises
        ------
        calf_forecaster.training.NonFiniteForecastError
            If a forecast is not finite (e.g. values beyond the network's precision).
        """
        context = check_windows(context).astype(np.float64, copy=False)  # (N, L, M)
        if self.scaler is not None and context.shape[2] != self.scaler.mean_.shape[0]:
            raise ValueError(f"`context` has {context.shape[2]} columns, but the pipeline was "
                             f"fitted on {self.scaler.mean_.shape[0]}; pass the columns of fit, "
                             f"in the same order")
        x = context if self.scaler is None else self.scaler.transform(context)  # (N, L, M)
        device = inference_device(self.trainer_kwargs, self.trained_on)
        forecast = predict_windows(self.network, x, self.training.batch_size, device=device,
                                   precision=self.trainer_kwargs.get("precision"))
        if self.scaler is not None:
            if forecast.ndim == 4:  # (N, H, M, Q): un-scale every quantile with its column's
                forecast = self.scaler.inverse_transform(forecast.swapaxes(2, 3)).swapaxes(2, 3)
            else:
                forecast = self.scaler.inverse_transform(forecast)  # (N, H, M)
            if not np.isfinite(forecast).all():
                raise NonFiniteForecastError("un-scaled forecasts overflow float64; rescale the "
                                             "data")
        return forecast if self.n_targets is None else forecast[:, :, -self.n_targets:]

    # ------------------------------------------------------------------ copies and persistence

    def copy(self) -> CALFPipeline:
        """An independent copy (network included), made in memory."""
        return copy.deepcopy(self)

    def __deepcopy__(self, memo: dict[int, Any]) -> CALFPipeline:
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return copied

    def _metadata(self) -> dict[str, Any]:
        scaler = None if self.scaler is None else {"mean": self.scaler.mean_.tolist(),
                                                   "scale": self.scaler.scale_.tolist()}
        return {"training": self.training.to_dict(), "scaler": scaler,
                "trained_on": self.trained_on, "n_targets": self.n_targets}

    def to_files(self, metadata: Mapping[str, Any] | None = None) -> dict[str, bytes]:
        """The saved-model files (network, recipe, scaler, ``metadata``) in memory."""
        return serialize_calf(self.network, {**(metadata or {}), PIPELINE_KEY: self._metadata()})

    @classmethod
    def from_files(cls, files: Mapping[str, bytes], backbone: str | os.PathLike[str] | None = None,
                   trainer_kwargs: Mapping[str, Any] | None = None, source: str = "saved model"
                   ) -> tuple[CALFPipeline, dict[str, Any]]:
        """Inverse of :meth:`to_files`; returns the pipeline and the caller's metadata."""
        network, metadata = deserialize_calf(files, backbone=backbone, source=source)
        state = dict(metadata.pop(PIPELINE_KEY, None) or {})
        training = TrainingConfig.from_dict(state.get("training", {}))
        pipeline = cls(network, training, None, trainer_kwargs)
        if state.get("scaler") is not None:
            scaler = ChannelScaler()
            scaler.mean_ = np.asarray(state["scaler"]["mean"], np.float64)
            scaler.scale_ = np.asarray(state["scaler"]["scale"], np.float64)
            pipeline.scaler = scaler
        pipeline.trained_on = state.get("trained_on")
        pipeline.n_targets = state.get("n_targets")
        return pipeline, metadata

    def save(self, directory: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
        """Save into ``directory`` (the files of :func:`~calf_forecaster.persistence.save_calf`)."""
        return write_model_files(directory, self.to_files(metadata))

    @classmethod
    def load(cls, directory: str | Path, backbone: str | os.PathLike[str] | None = None,
             trainer_kwargs: Mapping[str, Any] | None = None
             ) -> tuple[CALFPipeline, dict[str, Any]]:
        """Load a pipeline saved by :meth:`save`; ``backbone`` if it moved since saving."""
        return cls.from_files(read_model_files(directory), backbone, trainer_kwargs,
                              source=str(directory))

    def __getstate__(self) -> dict[str, Any]:
        """Pickle in the portable saved format: the frozen backbone is never pickled.

        Unpickling rebuilds the backbone from its saved location, or from the one an enclosing
        :func:`calf_forecaster.persistence.backbone_location` gives.
        """
        state = self.__dict__.copy()
        state["network"] = self.to_files()
        state.pop("last_run", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        files = state.pop("network")
        loaded, _ = type(self).from_files(files, source="pickled CALF pipeline")
        self.__dict__.update(state)
        self.network = loaded.network
        self.last_run = None
