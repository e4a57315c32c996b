"""sktime adapter: ``CALFForecaster``, CALF as an sktime forecaster.

This module holds sktime's hooks, tags and parameters and the translation between sktime's
containers and :class:`calf_forecaster.pipeline.CALFPipeline`, which does the work (checks,
scaling, windowing, training, prediction, devices, persistence). The constructor and its
parameter docs are generated from :class:`~calf_forecaster.config.CALFConfig` and
:class:`~calf_forecaster.config.TrainingConfig` (:mod:`calf_forecaster.parameters`).

Symbols used in comments: N series (instances) in a panel, L lookback (``seq_len``), H network
horizon (``pred_len_``), M columns (variates).
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd

try:
    from sktime.datatypes import check_is_scitype, convert_to, update_data
    from sktime.forecasting.base import BaseForecaster, ForecastingHorizon
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "calf_forecaster.sktime needs sktime, which is not installed. "
        'Install it with: pip install "calf-forecaster[sktime]"'
    ) from err

from calf_forecaster.config import CALFConfig, TrainingConfig
from calf_forecaster.parameters import (
    Parameter,
    config_parameters,
    make_init,
    numpydoc_parameters,
    split_values,
)
from calf_forecaster.pipeline import CALFPipeline, check_series
from calf_forecaster.preprocessing import check_lengths

__all__ = ["CALFForecaster"]

logger = logging.getLogger(__name__)

# one key per series of a panel: the tuple of its instance index levels; () for a single series
SeriesKey = tuple[Hashable, ...]

_PANEL_MTYPES = ["pd-multiindex", "pd_multiindex_hier"]

#: The constructor: every CALFConfig field but the horizon (set by ``fh``), every
#: TrainingConfig field (the seed under sktime's name), and the adapter's own two.
PARAMETERS: list[Parameter] = [
    *config_parameters(CALFConfig, exclude=["pred_len"]),
    *config_parameters(TrainingConfig, renamed={"seed": (
        "random_state", None, "Seed of weight initialisation, shuffling and dropout. `None` "
                              "gives a different model on every fit; an int makes fits "
                              "repeatable on one device.")}),
    Parameter("trainer_kwargs", None, "dict | None",
              "Extra keyword arguments of the `pytorch_lightning.Trainer`, e.g. "
              "`{\"accelerator\": \"gpu\", \"precision\": \"bf16-mixed\"}`. Not modified. "
              "Forecasts run on the device training ran on."),
    Parameter("verbose", False, "bool",
              "Show Lightning's progress bar, model summary and messages while training."),
]


class CALFForecaster(BaseForecaster):
    """CALF: cross-modal fine-tuning of a language model for forecasting.

    CALF (Liu et al., AAAI 2025) feeds each variate's lookback window as one token
    through the first ``n_layers`` blocks of a pre-trained causal language model,
    fine-tuned with LoRA, and aligns it with a second, textual branch built from
    principal components of the model's word embeddings. Only the temporal branch
    is used to forecast. One network is trained for all columns of ``y``
    (natively multivariate) and, for panel or hierarchical ``y``, for all series
    at once (one global model, not one model per series).

    The horizon of the network, ``pred_len_``, is the largest step of the
    relative ``fh`` passed to ``fit``; ``fh`` may skip steps (e.g. ``[2, 5]``).
    Forecasts start at the end of each series (for a panel, each series' own
    last time point). In-sample forecasts are not supported.

    Too-short series are refused, never padded: ``fit`` needs at least
    ``seq_len + max(fh)`` observations in every series (one full training
    window), and ``predict`` needs the last ``seq_len`` observations of every
    series; otherwise a ``ValueError`` says which series is too short.

    Exogenous ``X``: every column of ``X`` is one more variate token, built
    from its observations at the same time points as ``y``'s lookback (the
    last ``seq_len`` before the cutoff at ``predict``). Covariate tokens come
    first and ``y``'s last (the backbone is causal over tokens, so only
    tokens before the targets inform them); only ``y``'s columns are
    forecast and scored. ``X`` must have the columns of ``fit`` (stored in
    ``X_columns_``) and cover ``y``'s time points; ``X`` for the future
    horizon is accepted at ``predict`` and not needed (the stored history of
    ``X`` gives the context). NaN or infinite values raise ``ValueError``, non-numeric
    columns ``TypeError``; a ``DatetimeIndex`` must be sorted, unique and
    regular (``asfreq``/``resample`` first), so that forecasts have timestamps.

    Quantiles and intervals: with ``quantiles`` (e.g. ``(0.05, 0.1, 0.5,
    0.9, 0.95)``) the network forecasts those levels for every step and
    column, trained with the pinball loss; ``predict`` returns the median,
    ``predict_quantiles`` any ``alpha`` within the fitted levels
    (interpolated linearly between the nearest two, refused outside them),
    and ``predict_interval``, ``predict_var`` and ``predict_proba`` follow
    from it (sktime derives them). Without ``quantiles`` the forecaster
    gives point forecasts only (``capability:pred_int`` is then False).

    Training runs through :class:`calf_forecaster.pipeline.CALFPipeline`, the
    pipeline every entry point of this package shares; this class translates
    between sktime's containers and it.

    {parameters}
    Attributes
    ----------
    pipeline_ : calf_forecaster.pipeline.CALFPipeline
        The fitted pipeline: network, column scaler, recipe, training device.
    network_ : torch.nn.Module
        The fitted CALF network (``pipeline_.network``), on CPU, in eval mode.
    pred_len_ : int
        Horizon H of ``network_``.
    columns_ : pandas.Index
        Columns of ``y`` seen in ``fit``, in order (the network is causal across
        columns, so their order matters).
    X_columns_ : pandas.Index or None
        Columns of ``X`` seen in ``fit``, in order (their tokens precede ``y``'s);
        ``None`` when fitted without ``X``.
    scaler_ : calf_forecaster.preprocessing.ChannelScaler or None
        Column scaler fitted in ``fit``, ``None`` if ``scale=False``.
    n_train_windows_ : int
        Number of training windows of the last training run (``fit``, or
        ``update`` with ``update_params=True``); 0 with ``max_epochs=0``.
    pretrained_pipeline_ : calf_forecaster.pipeline.CALFPipeline
        Pipeline learned by ``pretrain`` (only after ``pretrain``); ``fit`` fine-tunes
        a copy of its network and leaves it unchanged.
    pretrained_network_ : torch.nn.Module
        ``pretrained_pipeline_.network``.
    pretrain_pred_len_ : int
        Horizon of ``pretrained_network_``; later ``fh`` may not exceed it.
    pretrain_columns_ : pandas.Index
        Columns of the pretraining panel.
    n_pretrain_instances_ : int
        Number of series seen by ``pretrain`` so far.

    Notes
    -----
    ``update(y, update_params=False)`` only appends ``y`` to the stored history,
    so that forecasts start from the new cutoff. ``update_params=True`` also
    continues training the fitted network (warm start, same recipe as ``fit``) on
    all data seen so far, with the scaling statistics of ``fit``. The columns
    passed to ``update`` must equal those passed to ``fit``.

    ``pretrain(y_panel, fh=...)`` trains on a panel; a later ``fit`` on one
    series fine-tunes a copy of the pretrained network (``max_epochs=0``
    forecasts with it unchanged). Its ``fh`` may not exceed the pretraining
    horizon.

    *Zero-shot recipe*: ``pretrain`` on one panel, then
    ``set_params(max_epochs=0)`` and ``fit`` on another series or panel: the
    pretrained network forecasts it without training. Every column is one
    token, so the fit data may have another number of columns (or ``X``)
    than the pretraining panel; the column scaler is refit on the fit data.

    ``pickle`` and sktime's ``save`` store each network in the core's saved-model
    format (configuration and the weights that are not the pre-trained
    backbone's, see :mod:`calf_forecaster.persistence`), not the backbone itself:
    loading rebuilds the backbone from ``backbone``, which must still be
    available (local directory or hub cache), and refuses one whose word
    embeddings differ. If the backbone moved, load inside
    ``calf_forecaster.persistence.backbone_location(new_path)``.

    A failed or interrupted ``update`` leaves the forecaster as it was: every
    check runs before any state changes, and continued training works on a
    copy of the network that replaces it only when training succeeded.

    References
    ----------
    .. [1] Liu, P. et al. CALF: Aligning LLMs for Time Series Forecasting via
       Cross-modal Fine-Tuning. AAAI 2025.
    .. [2] Tan, M. et al. Are Language Models Actually Useful for Time Series
       Forecasting? NeurIPS 2024.

    Examples
    --------
    A tiny randomly initialised GPT-2 (built offline by
    :mod:`calf_forecaster.testing`) keeps the example fast:

    >>> from sktime.datasets import load_airline
    >>> from calf_forecaster.sktime import CALFForecaster
    >>> from calf_forecaster.testing import TINY_SETTINGS, tiny_backbone
    >>> y = load_airline()
    >>> forecaster = CALFForecaster(
    ...     seq_len=24, backbone=tiny_backbone(), n_layers=2, n_heads=4,
    ...     n_prototypes=16, encoder_ff_dim=64, max_epochs=2, validation_size=0,
    ...     random_state=0,
    ... )
    >>> forecaster.fit(y, fh=[1, 2, 3])  # doctest: +ELLIPSIS
    CALFForecaster(...)
    >>> forecaster.predict().shape
    (3,)

    The published configuration uses GPT-2 small from the Hugging Face hub:

    >>> forecaster = CALFForecaster(backbone="gpt2")  # doctest: +SKIP
    >>> forecaster.fit(y, fh=list(range(1, 97)))  # doctest: +SKIP
"""
    # The adapter keeps its own history (``_cur_y``) and updates natively, so sktime need not
    # store ``_y``/``_X`` too: sktime 1.3's default, taken now (it also ends sktime's warning
    # about the coming change at every construction).
    _config = {"remember_data": False}

    _tags = {
        # packaging info
        # --------------
        "authors": ["calf-forecaster developers"],
        "maintainers": ["calf-forecaster developers"],
        "python_version": ">=3.10",
        # PyPI names, as in pyproject.toml; checked by sktime on construction
        "python_dependencies": [
            "torch>=2.4",
            "transformers>=4.45",
            "peft>=0.13",
            "pytorch-lightning>=2.3",
            "safetensors>=0.4",
        ],
        # estimator type
        # --------------
        # one network for all columns: multivariate y is handled natively
        "capability:multivariate": True,
        # Series, Panel and Hierarchical y are handled natively, so that a panel
        # is fitted as ONE global model (sktime would otherwise fit one per series)
        "y_inner_mtype": ["pd.DataFrame", *_PANEL_MTYPES],
        # panel X with panel y, one global model (no vectorisation per series)
        "X_inner_mtype": ["pd.DataFrame", *_PANEL_MTYPES],
        "capability:exogenous": True,  # X's columns are variate tokens before y's
        "requires-fh-in-fit": True,  # the horizon sets the network's output size
        "capability:insample": False,  # forecasts start after the cutoff only
        # quantiles, intervals, variance from the quantile head; set per instance in
        # __init__: False with `quantiles=None` (point forecasts only)
        "capability:pred_int": True,
        "capability:pred_int:insample": False,
        "capability:missing_values": False,  # NaN raises ValueError
        "capability:unequal_length": True,  # panel series may differ in length
        "capability:update": True,  # native _update: new context, optional warm start
        "capability:pretrain": True,  # pretrain on a panel, fine-tune in fit
        # attributes learned by pretrain; kept when fit resets fitted state
        "pretrain:fitted_params": [
            "pretrained_pipeline_",
            "pretrain_pred_len_",
            "pretrain_columns_",
            "n_pretrain_instances_",
        ],
        # training is stochastic; random_state makes it repeatable
        "property:randomness": "derandomized",
        "capability:random_state": True,
        "fit_is_empty": False,
    }


    # ------------------------------------------------------------------ fitted state

    @property
    def network_(self):
        """The fitted network (``pipeline_.network``)."""
        return self.pipeline_.network

    @property
    def scaler_(self):
        """The fitted column scaler (``pipeline_.scaler``), ``None`` with ``scale=False``."""
        return self.pipeline_.scaler

    @property
    def pretrained_network_(self):
        """The pretrained network (``pretrained_pipeline_.network``)."""
        return self.pretrained_pipeline_.network

    # ------------------------------------------------------------------ public

    def set_params(self, **params) -> CALFForecaster:
        """Set parameters, keeping what ``pretrain`` learned (sktime's ``set_params`` resets all).

        Fitted state is reset as usual; the pretraining state (``pretrained_pipeline_`` and
        the other ``pretrain:fitted_params``) is kept, so that ``pretrain``, then
        ``set_params(max_epochs=0)``, then ``fit`` forecasts with the pretrained network (the
        zero-shot recipe). A later ``fit`` refuses network parameters that differ from the
        pretrained network's.

        Returns
        -------
        CALFForecaster
            ``self``.
        """
        return self._set_params_at("pretrained", params)

    def update(self, y, X=None, update_params: bool = True) -> CALFForecaster:
        """Append new observations and optionally continue training.

        Same contract as :meth:`sktime.forecasting.base.BaseForecaster.update`, with
        every check made before any state changes: ``y`` must have the columns seen in
        ``fit`` (same names, same order), finite numeric values, and timestamps that
        continue each series without a gap. A refused or failed update (an error, or
        an interruption of the continued training) leaves the forecaster as it was.

        Parameters
        ----------
        y : sktime time series container
            New observations, same scitype and columns as in ``fit``.
        X : sktime time series container, optional
            New exogenous observations, the columns of ``fit``; needed when
            fitted with ``X`` (at least for the time points of ``y``).
        update_params : bool, default=True
            ``True`` continues training the network on all data seen so far;
            ``False`` only moves the cutoff.

        Returns
        -------
        CALFForecaster
            ``self``.

        Raises
        ------
        ValueError
            If the columns of ``y`` differ from those seen in ``fit``, ``y`` holds
            NaN or infinite values, or its timestamps do not continue the history.
        TypeError
            If ``y`` has non-numeric columns.
        """
        return self._transaction(super().update, y, X=X, update_params=update_params)

    def update_predict_single(
        self, y=None, fh=None, X=None, update_params: bool = True
    ) -> pd.Series | pd.DataFrame:
        """Update with ``y``, then forecast; ``y`` is checked as in :meth:`update` first.

        Parameters
        ----------
        y : sktime time series container, optional
            New observations, same scitype and columns as in ``fit``.
        fh : ForecastingHorizon or coercible, optional
            The horizon of ``fit`` (it cannot change).
        X : sktime time series container, optional
            New exogenous observations, as in :meth:`update`.
        update_params : bool, default=True
            Whether to continue training before forecasting.

        Returns
        -------
        pandas.Series or pandas.DataFrame
            Forecasts, in the container type of ``y``.
        """
        return self._transaction(super().update_predict_single, y=y, fh=fh, X=X,
                                 update_params=update_params)

    def _transaction(self, method, y, **kwargs):
        """Check ``y`` against the fitted state, then run ``method``; restore state on error."""
        if self.is_fitted and y is not None and len(y) > 0:
            self._check_update_data(y, kwargs.get("update_params", True))
        snapshot = dict(self.__dict__)
        try:
            return method(y, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise

    # ---------------------------------------------------------- sktime hooks

    def _fit(self, y: pd.DataFrame, X: pd.DataFrame | None, fh: ForecastingHorizon):
        """Train the network on every series of ``y``.

        Parameters
        ----------
        y : pandas.DataFrame
            Single series (plain index) or panel/hierarchy (row MultiIndex).
        X : pandas.DataFrame or None
            Exogenous columns, observed at (at least) every time point of ``y``.
        fh : ForecastingHorizon
            Horizon; its largest relative step becomes the network's horizon.

        Returns
        -------
        CALFForecaster
            ``self``.
        """
        series = _split_series(y)
        _check_time_indexes(series)
        steps = self._relative_steps(fh, series)
        pred_len = int(max(s.max() for s in steps.values()))
        pretrained = getattr(self, "pretrained_pipeline_", None)
        if pretrained is not None:
            if pred_len > self.pretrain_pred_len_:
                raise ValueError(
                    f"`fh` reaches {pred_len} steps ahead, beyond the horizon of "
                    f"{self.pretrain_pred_len_} steps the network was pretrained for. "
                    "Pass an fh within it, or pretrain again with a longer fh."
                )
            pred_len = self.pretrain_pred_len_
        config, training = self._configs(pred_len)  # every parameter checked before any work
        if pretrained is not None and config != pretrained.config:
            changed = sorted(name for name, value in config.to_dict().items()
                             if value != pretrained.config.to_dict()[name])
            raise ValueError(f"the network parameters {changed} differ from those of the "
                             f"pretrained network; pretrain again with them, or keep them.")
        arrays = self._arrays(series, config.seq_len + pred_len, "to fit", X)
        if pretrained is not None:
            logger.info("fine-tuning the pretrained network (horizon %d)", pred_len)
            pipeline = pretrained.copy()
            pipeline.training, pipeline.trainer_kwargs = training, dict(self.trainer_kwargs or {})
            pipeline.verbose = self.verbose
        else:
            pipeline = CALFPipeline.build(config, training, self.trainer_kwargs, self.verbose)
        run = pipeline.fit(arrays, names=_names(series), n_targets=_n_targets(y, X))
        self.pipeline_ = pipeline
        self.n_train_windows_ = run.n_train_windows
        self.pred_len_ = pred_len
        self.columns_ = y.columns.copy()
        self.X_columns_ = None if X is None else X.columns.copy()
        self._cur_y, self._cur_X = y, X
        return self

    def _predict(self, fh: ForecastingHorizon, X: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast every series from its last ``seq_len`` observations.

        Parameters
        ----------
        fh : ForecastingHorizon
            Horizon, relative steps within ``1..pred_len_``.
        X : pandas.DataFrame or None
            Exogenous data; only their observations before the cutoff are used (with the
            stored history of ``X``), future ones are accepted and not needed.

        Returns
        -------
        pandas.DataFrame
            Forecasts with the columns of ``fit`` (the median of a quantile model); row
            MultiIndex for panels.
        """
        forecast, frames = self._forecast(fh, X)
        if forecast.ndim == 4:  # (N, H, M, Q): the median is the point forecast
            forecast = forecast[..., self.pipeline_.config.quantiles.index(0.5)]
        return self._frames(forecast, frames, self.columns_)

    def _predict_quantiles(self, fh: ForecastingHorizon, X: pd.DataFrame | None,
                           alpha: list[float]) -> pd.DataFrame:
        """Quantile forecasts at every ``alpha``, interpolated between the fitted levels.

        Parameters
        ----------
        fh : ForecastingHorizon
            Horizon, relative steps within ``1..pred_len_``.
        X : pandas.DataFrame or None
            As in :meth:`_predict`.
        alpha : list of float
            Quantile levels, each within the range of ``quantiles``.

        Returns
        -------
        pandas.DataFrame
            Columns ``(variable, alpha)``, rows as :meth:`predict`.
        """
        levels = self.pipeline_.config.quantiles
        if levels is None:
            raise ValueError("CALFForecaster was fitted with `quantiles=None` and forecasts "
                             "points only; set `quantiles` (e.g. (0.05, 0.1, 0.5, 0.9, 0.95)) "
                             "and refit for quantiles or intervals.")
        forecast, frames = self._forecast(fh, X)  # (N, H, M, Q)
        values = interpolate_quantiles(forecast, levels, alpha)  # (N, H, M, A)
        n_series, n_steps = values.shape[:2]
        columns = self._get_columns(method="predict_quantiles", alpha=alpha)
        return self._frames(values.reshape(n_series, n_steps, -1), frames, columns)

    def _forecast(self, fh: ForecastingHorizon, X: pd.DataFrame | None
                  ) -> tuple[np.ndarray, list[tuple[SeriesKey, pd.Index, np.ndarray]]]:
        """The network's forecast of every series, and each one's (key, time index, rows)."""
        series = _split_series(self._cur_y)
        steps = self._relative_steps(fh, series)
        too_far = {k: int(s.max()) for k, s in steps.items() if s.max() > self.pred_len_}
        if too_far:
            key, step = next(iter(too_far.items()))
            raise ValueError(
                f"`fh` reaches {step} steps ahead{_describe(key)}, beyond the horizon "
                f"of {self.pred_len_} steps the network was fitted for. Refit with "
                "this fh."
            )
        seq_len = self.pipeline_.config.seq_len
        # y long enough, before X is judged; only lengths: the stored history's values were
        # checked by fit / update, and converting all of it per call costs ~0.2-0.5 s on
        # Traffic-sized data (the lookbacks below are checked in full)
        check_lengths([len(frame) for frame in series.values()], seq_len, _names(series),
                      f"to forecast (seq_len={self.seq_len} plus the horizon after each "
                      f"series' end, if any)", "CALF does not pad short series: use a shorter "
                      "seq_len or horizon, or longer series.")
        lookbacks = {key: frame.iloc[-seq_len:] for key, frame in series.items()}
        history = self._exogenous_history(X, "predict")
        arrays = self._arrays(lookbacks, seq_len, "to forecast", history)
        context = np.stack(arrays)  # (N, L, M)
        forecast = self.pipeline_.forecast(context)  # (N, H, M_y) or (N, H, M_y, Q)
        where = [(key, _absolute_index(fh, frame.index, self._cutoff).rename(frame.index.name),
                  steps[key] - 1)  # step 1 is row 0
                 for key, frame in series.items()]
        return forecast, where

    def _frames(self, forecast: np.ndarray, where: list[tuple[SeriesKey, pd.Index, np.ndarray]],
                columns: pd.Index) -> pd.DataFrame:
        """(N, H, C) values -> sktime's frame of the steps of ``fh`` (row MultiIndex: panels)."""
        frames = [pd.DataFrame(values[rows], index=index, columns=columns)
                  for (_, index, rows), values in zip(where, forecast, strict=True)]
        return _join_series([key for key, _, _ in where], frames, self._cur_y.index)

    def _update(self, y: pd.DataFrame, X: pd.DataFrame | None = None, update_params: bool = True):
        """Append ``y`` to the history; if asked, continue training on all of it.

        Training works on a copy of the pipeline, which replaces the fitted one only
        when it succeeded.

        Parameters
        ----------
        y : pandas.DataFrame
            New observations, same columns as in ``fit``.
        X : pandas.DataFrame or None
            New exogenous observations, the columns of ``fit``.
        update_params : bool, default=True
            Whether to continue training the network.

        Returns
        -------
        CALFForecaster
            ``self``.
        """
        history = update_data(self._cur_y, y)
        X_history = self._exogenous_history(X, "update")
        if update_params:
            series = _split_series(history)
            seq_len = self.pipeline_.config.seq_len
            arrays = self._arrays(series, seq_len + self.pred_len_, "to train at update",
                                  X_history)
            pipeline = self.pipeline_.copy()
            pipeline.training = self._configs(self.pred_len_)[1]
            run = pipeline.fit(arrays, refit_scaler=False, names=_names(series),
                               n_targets=pipeline.n_targets)
            self.pipeline_ = pipeline
            self.n_train_windows_ = run.n_train_windows
        self._cur_y, self._cur_X = history, X_history
        return self

    def _pretrain(self, y: pd.DataFrame, X: pd.DataFrame | None = None, fh=None):
        """Train a network on a panel, to be fine-tuned later by ``fit``.

        Parameters
        ----------
        y : pandas.DataFrame
            Panel or hierarchical data (row MultiIndex).
        X : pandas.DataFrame or None
            Exogenous columns of the pretraining panel (tokens before ``y``'s).
        fh : ForecastingHorizon
            Relative horizon; its largest step becomes the network's horizon.
            Required on the first call.

        Returns
        -------
        CALFForecaster
            ``self``.
        """
        if fh is None:
            raise ValueError(
                "`fh` is required by the first call of pretrain: its largest step "
                "sets the horizon of the network, e.g. pretrain(y, fh=[1, 2, 3])."
            )
        pred_len = _pretrain_horizon(fh)
        config, training = self._configs(pred_len)
        series = _split_series(y)
        _check_time_indexes(series)
        arrays = self._arrays(series, config.seq_len + pred_len, "to pretrain", X)
        pipeline = CALFPipeline.build(config, training, self.trainer_kwargs, self.verbose)
        pipeline.fit(arrays, names=_names(series), n_targets=_n_targets(y, X))

        self.pretrained_pipeline_ = pipeline
        self.pretrain_pred_len_ = pred_len
        self.pretrain_columns_ = y.columns.copy()
        self.n_pretrain_instances_ = len(series)
        return self

    def _pretrain_update(self, y: pd.DataFrame, X: pd.DataFrame | None = None, fh=None):
        """Continue pretraining the pretrained network on another panel.

        Parameters
        ----------
        y : pandas.DataFrame
            Panel or hierarchical data (row MultiIndex).
        X : pandas.DataFrame or None
            Exogenous columns of this panel.
        fh : ForecastingHorizon or None
            ``None`` keeps the pretraining horizon; otherwise it may not exceed it.

        Returns
        -------
        CALFForecaster
            ``self``.
        """
        if not hasattr(self, "pretrained_pipeline_"):  # fitted, but never pretrained
            return self._pretrain(y, X=X, fh=fh)
        pred_len = self.pretrain_pred_len_
        if fh is not None and _pretrain_horizon(fh) > pred_len:
            raise ValueError(
                f"`fh` reaches {_pretrain_horizon(fh)} steps ahead, beyond the horizon of "
                f"{pred_len} steps of the pretrained network."
            )
        series = _split_series(y)
        _check_time_indexes(series)
        seq_len = self.pretrained_pipeline_.config.seq_len
        arrays = self._arrays(series, seq_len + pred_len, "to pretrain", X)
        pipeline = self.pretrained_pipeline_.copy()
        pipeline.fit(arrays, names=_names(series), n_targets=_n_targets(y, X))
        self.pretrained_pipeline_ = pipeline
        self.n_pretrain_instances_ += len(series)
        return self

    # ----------------------------------------------------------------- helpers

    def _configs(self, pred_len: int) -> tuple[CALFConfig, TrainingConfig]:
        """The network configuration for horizon ``pred_len`` and the training recipe.

        Both validate every parameter; sktime expects errors here, not in ``__init__``.
        """
        fields = split_values(PARAMETERS, self.get_params(deep=False))
        try:
            return (CALFConfig(**fields[CALFConfig], pred_len=pred_len),
                    TrainingConfig(**fields[TrainingConfig]))
        except ValueError as error:  # name the parameter as this class calls it
            message = str(error)
            for parameter in PARAMETERS:
                if parameter.field is not None and parameter.field != parameter.name:
                    message = message.replace(f"`{parameter.field}`", f"`{parameter.name}`")
            raise type(error)(message) from error

    def _arrays(self, series: dict[SeriesKey, pd.DataFrame], required: int,
                what: str, X: pd.DataFrame | None = None) -> list[np.ndarray]:
        """The float64 (T, M) values of every series, refusing bad or short ones first.

        With ``X``, each series' values are ``X``'s columns at its time points, then ``y``'s
        (covariate tokens first: the backbone is causal over tokens).
        """
        arrays = check_series([frame.to_numpy() for frame in series.values()], required,
                              _names(series), f"{what} (seq_len={self.seq_len} plus the horizon "
                                              f"after each series' end, if any)")
        if X is None:
            return arrays
        covariates = _split_series(X)
        joined = []
        for (key, frame), values in zip(series.items(), arrays, strict=True):
            known = covariates.get(key)
            missing = frame.index if known is None else frame.index.difference(known.index)
            if len(missing):
                raise ValueError(
                    f"X{_describe(key)} lacks {len(missing)} of the {len(frame)} time points "
                    f"of y needed {what} (the first is {missing[0]}); pass X observed "
                    f"at every time point of y (its last seq_len={self.seq_len} before the "
                    f"cutoff, to forecast).")
            exogenous = check_series([known.loc[frame.index].to_numpy()], 0,
                                     [f"X{_describe(key)}"], what, "")[0]
            joined.append(np.concatenate([exogenous, values], axis=1))  # (T, M_x + M_y)
        return joined

    def _exogenous_history(self, X: pd.DataFrame | None, method: str) -> pd.DataFrame | None:
        """The stored ``X`` extended by ``X`` of ``predict``/``update``, columns checked."""
        expected = getattr(self, "X_columns_", None)
        if X is None:
            return getattr(self, "_cur_X", None)
        if expected is None:
            raise ValueError(f"X passed to {method}, but CALFForecaster was fitted without X; "
                             f"pass X to fit too (its columns become tokens), or none here.")
        if list(X.columns) != list(expected):
            raise ValueError(
                f"X passed to {method} has columns {list(X.columns)}, but CALFForecaster was "
                f"fitted with X columns {list(expected)}. Pass the same columns (same names, "
                "same order: the network is causal across columns), or refit.")
        return X if self._cur_X is None else update_data(self._cur_X, X)

    def _check_update_data(self, y, update_params: bool) -> None:
        """Refuse ``y`` for ``update`` if its columns, values, timestamps or lengths do not fit."""
        valid, _, metadata = check_is_scitype(
            y, scitype=["Series", "Panel", "Hierarchical"], return_metadata=["scitype"])
        if not valid:
            return  # sktime's own checks raise the error for invalid containers
        inner = convert_to(y, to_type=self.get_tag("y_inner_mtype"), as_scitype=metadata["scitype"])
        expected = list(self.columns_)
        if list(inner.columns) != expected:
            raise ValueError(
                f"y passed to update has columns {list(inner.columns)}, but "
                f"CALFForecaster was fitted on columns {expected}. Pass the same columns "
                "(same names, same order: the network is causal across columns), or refit."
            )
        new_series = _split_series(inner)
        history = _split_series(self._cur_y)
        check_series([frame.to_numpy() for frame in new_series.values()], 0, _names(new_series),
                     "to update", "")
        required = self.pipeline_.config.seq_len + (self.pred_len_ if update_params else 0)
        for key, frame in new_series.items():
            seen = history.get(key)
            _check_continues(key, seen.index if seen is not None else None, frame.index)
            length = len(frame.index if seen is None else seen.index.union(frame.index))
            if length < required:
                raise ValueError(
                    f"After this update, y{_describe(key)} would have {length} time points, "
                    f"but CALFForecaster needs at least {required} per series "
                    f"(seq_len={self.seq_len}"
                    + (" plus the horizon, to train" if update_params else ", to forecast")
                    + "). Pass a longer series."
                )

    def _relative_steps(
        self, fh: ForecastingHorizon, series: dict[SeriesKey, pd.DataFrame]
    ) -> dict[SeriesKey, np.ndarray]:
        """Return the relative steps of ``fh`` from each series' own last time point."""
        steps = {}
        for key, frame in series.items():
            if fh.is_relative:
                relative = fh.to_numpy()
            else:
                cutoff = _series_cutoff(frame.index, self._cutoff)
                relative = fh.to_relative(cutoff).to_numpy()
            relative = np.asarray(relative, dtype=np.int64)
            if relative.min() < 1:
                raise ValueError(
                    f"`fh` contains in-sample steps for y{_describe(key)} (relative "
                    f"steps {relative.tolist()}); CALFForecaster only forecasts after "
                    "the end of every series."
                )
            steps[key] = relative
        return steps

    @classmethod
    def get_test_params(cls, parameter_set: str = "default") -> list[dict[str, Any]]:
        """Return fast parameter sets for sktime's estimator checks.

        Both sets use the tiny randomly initialised GPT-2 of
        :mod:`calf_forecaster.testing`, built and saved on first use (no network).

        Parameters
        ----------
        parameter_set : str, default="default"
            Name of the set; only "default" exists.

        Returns
        -------
        list of dict
            Three parameter sets; their windows fit sktime's shortest test series
            (10 time points with a 3-step horizon). The third is a quantile model whose
            levels span every ``alpha`` and coverage sktime's checks ask for (0.05 to
            0.95, quartiles for ``predict_var``).
        """
        from calf_forecaster.testing import tiny_backbone

        common = {
            "backbone": tiny_backbone(),
            "n_layers": 2,
            "n_heads": 4,
            "n_prototypes": 8,
            "encoder_ff_dim": 16,
            "batch_size": 64,  # one optimiser step per epoch on sktime's test series
            "random_state": 0,
        }
        return [
            # trains one epoch, with early stopping on a held-out end of each series
            {**common, "seq_len": 4, "max_epochs": 1, "patience": 1, "validation_size": 0.2},
            # untrained, randomly initialised backbone, no scaling: the forecasting path
            {
                **common,
                "seq_len": 5,
                "n_layers": 1,
                "pretrained": False,
                "lora_r": 2,
                "scale": False,
                "max_epochs": 0,
                "validation_size": 0,
            },
            # quantiles, intervals and variance: a quantile head trained one epoch
            {**common, "seq_len": 4, "max_epochs": 1, "validation_size": 0,
             "quantiles": (0.05, 0.25, 0.5, 0.75, 0.95)},
        ]


def _store_parameters(self: CALFForecaster, values: dict[str, Any]) -> None:
    """``__init__``'s body: store every parameter unchanged (sktime's contract)."""
    for name, value in values.items():
        setattr(self, name, value)
    BaseForecaster.__init__(self)
    # intervals and quantiles need a quantile head (docs/method.md, Quantile forecasts)
    self.set_tags(**{"capability:pred_int": values["quantiles"] is not None})
    # sktime creates these only when ``remember_data`` is on at construction; a later
    # ``set_config(remember_data=True)`` expects them
    self._y = getattr(self, "_y", None)
    self._X = getattr(self, "_X", None)


CALFForecaster.__init__ = make_init(PARAMETERS, _store_parameters,
                                    qualname="CALFForecaster.__init__")
CALFForecaster.__doc__ = CALFForecaster.__doc__.replace(
    "    {parameters}\n", "    Parameters\n    ----------\n" + numpydoc_parameters(PARAMETERS) + "\n\n")


# --------------------------------------------------------------- series and horizons


def _describe(key: SeriesKey) -> str:
    """Return " (series <key>)" for a panel series, "" for a single series."""
    if key == ():
        return ""
    return f" (series {key[0]!r})" if len(key) == 1 else f" (series {key!r})"


def _split_series(y: pd.DataFrame) -> dict[SeriesKey, pd.DataFrame]:
    """Split a single series or a panel into {instance key: frame with time index}."""
    if not isinstance(y.index, pd.MultiIndex):
        return {(): y}
    levels = list(range(y.index.nlevels - 1))
    return {
        key if isinstance(key, tuple) else (key,): frame.droplevel(levels)
        for key, frame in y.groupby(level=levels, sort=False)
    }


def _join_series(
    keys: list[SeriesKey], frames: list[pd.DataFrame], like: pd.Index
) -> pd.DataFrame:
    """Inverse of _split_series: stack per-series frames under the index names of ``like``."""
    if keys == [()]:
        return frames[0]
    tuples = [(*key, t) for key, frame in zip(keys, frames, strict=True) for t in frame.index]
    index = pd.MultiIndex.from_tuples(tuples, names=like.names)
    return pd.DataFrame(np.concatenate([f.to_numpy() for f in frames]), index=index,
                        columns=frames[0].columns)


def _n_targets(y: pd.DataFrame, X: pd.DataFrame | None) -> int | None:
    """How many of the last columns the network forecasts: ``y``'s, after ``X``'s (or all)."""
    return None if X is None else len(y.columns)


def interpolate_quantiles(forecast: np.ndarray, levels: tuple[float, ...],
                          alpha: list[float]) -> np.ndarray:
    """(..., Q) quantile forecasts at ``levels`` -> (..., A) at every ``alpha``.

    Linear interpolation between the two nearest fitted levels (exact at a fitted level, and
    within 1e-9 of one: sktime computes ``(1 - 0.9) / 2`` as 0.04999...); levels outside
    ``[levels[0], levels[-1]]`` are refused rather than extrapolated.
    """
    grid = np.asarray(levels)
    alpha = [float(grid[np.abs(grid - a).argmin()]) if np.abs(grid - a).min() <= 1e-9 else a
             for a in alpha]
    low, high = levels[0], levels[-1]
    outside = [a for a in alpha if not low <= a <= high]
    if outside:
        raise ValueError(
            f"alpha {outside} lies outside the fitted quantile levels [{low:g}, {high:g}] "
            f"(`quantiles`={list(levels)}); CALFForecaster interpolates between fitted levels "
            f"but does not extrapolate: refit with `quantiles` reaching these levels.")
    columns = []
    for a in alpha:
        upper = min(int(np.searchsorted(grid, a, side="right")), len(grid) - 1)
        lower = max(upper - 1, 0)
        if grid[lower] == a or lower == upper:
            columns.append(forecast[..., lower])
            continue
        if grid[upper] == a:
            columns.append(forecast[..., upper])
            continue
        weight = (a - grid[lower]) / (grid[upper] - grid[lower])
        columns.append(forecast[..., lower] + weight * (forecast[..., upper]
                                                         - forecast[..., lower]))
    return np.stack(columns, axis=-1)


def _names(series: dict[SeriesKey, pd.DataFrame]) -> list[str]:
    """Readable names of the series of a panel, for error messages."""
    return [f"y{_describe(key)}" for key in series]


def _series_freq(time_index: pd.Index):
    """The frequency of one series' DatetimeIndex: its own, or inferred from its steps."""
    return time_index.freq or (pd.infer_freq(time_index) if len(time_index) >= 3 else None)


def _is_regular(index: pd.Index) -> bool:
    """Whether sktime can count on from ``index`` in steps of one: a DatetimeIndex with a
    frequency (its own or inferred), a PeriodIndex or integer index without gaps."""
    if len(index) < 2:
        return True
    if isinstance(index, pd.DatetimeIndex):
        return _series_freq(index) is not None
    if isinstance(index, pd.PeriodIndex):
        return len(index) == (index[-1] - index[0]).n + 1
    if pd.api.types.is_integer_dtype(index.dtype):
        return bool((np.diff(index.to_numpy()) == 1).all())
    return True  # other index types are sktime's to judge


def _irregular_fix(index: pd.Index) -> str:
    """How to make ``index`` regular, for the error messages."""
    if isinstance(index, pd.DatetimeIndex):
        return ("make it regular first, e.g. y.asfreq('h') (then impute the gaps) or "
                "y.resample('h').mean()")
    if isinstance(index, pd.PeriodIndex):
        return ("reindex it to every period first, y.reindex(pd.period_range(first, last, "
                "freq=y.index.freq)), then impute the gaps")
    return ("reindex it to every integer first, y.reindex(range(first, last + 1)), then impute "
            "the gaps (sktime counts an integer index on in steps of 1)")


def _check_order(key: SeriesKey, index: pd.Index) -> None:
    """Refuse an unsorted or duplicated time index."""
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError(
            f"the time index of y{_describe(key)} is "
            f"{'not unique' if index.has_duplicates else 'not sorted'}; sort it and drop "
            "duplicated time points (y.sort_index(), y[~y.index.duplicated()]) first.")


def _check_time_indexes(series: dict[SeriesKey, pd.DataFrame]) -> None:
    """Refuse timestamps sktime cannot extend: unsorted, duplicated or irregular ones."""
    for key, frame in series.items():
        index = frame.index
        _check_order(key, index)
        if not _is_regular(index) or (isinstance(index, pd.DatetimeIndex)
                                      and _series_freq(index) is None):
            raise ValueError(
                f"the time index of y{_describe(key)} is not regular (a missing time point, or "
                f"no frequency), so forecasts cannot be given the right time points; "
                f"{_irregular_fix(index)}.")


def _check_continues(key: SeriesKey, seen: pd.Index | None, new: pd.Index) -> None:
    """Refuse an update of one series that is unsorted, goes back in time or leaves a gap.

    The regularity of a continued series is judged on its history and the update together,
    so that an update of one or two time points (whose index alone has no frequency) passes.
    """
    if seen is None or len(seen) == 0:
        _check_time_indexes({key: pd.DataFrame(index=new)})
        return
    _check_order(key, new)
    if new[-1] < seen[-1]:
        raise ValueError(f"the update of y{_describe(key)} ends at {new[-1]}, before the end of "
                         f"its history ({seen[-1]}); pass observations after {seen[-1]}.")
    if not _is_regular(seen.union(new)):
        raise ValueError(f"the update of y{_describe(key)} starts at {new[0]}, leaving a gap "
                         f"after the history's end {seen[-1]}; pass the missing time points "
                         "too (impute them if need be).")


def _series_cutoff(time_index: pd.Index, global_cutoff: pd.Index) -> pd.Index:
    """Return the last time point of one series as a one-element index with a freq.

    The frequency is the series' own (inferred from its steps if need be): a panel's overall
    time level has none as soon as its series' date ranges overlap.
    """
    if len(global_cutoff) == 1 and time_index[-1] == global_cutoff[0] \
            and getattr(global_cutoff, "freq", True) is not None:
        return global_cutoff
    cutoff = time_index[-1:]
    if isinstance(cutoff, pd.DatetimeIndex):
        freq = getattr(global_cutoff, "freq", None) or _series_freq(time_index)
        cutoff = pd.DatetimeIndex(cutoff, freq=freq)
    return cutoff


def _absolute_index(
    fh: ForecastingHorizon, time_index: pd.Index, global_cutoff: pd.Index
) -> pd.Index:
    """Return the absolute time points of ``fh`` after the end of one series."""
    if not fh.is_relative:
        return fh.to_absolute_index(global_cutoff)
    return fh.to_absolute_index(_series_cutoff(time_index, global_cutoff))


def _pretrain_horizon(fh: ForecastingHorizon) -> int:
    """Return the largest step of a relative pretraining horizon."""
    if not isinstance(fh, ForecastingHorizon):
        fh = ForecastingHorizon(fh)
    if not fh.is_relative:
        raise ValueError(
            "pretrain needs a relative `fh` (steps ahead, e.g. [1, 2, 3]), because a "
            "pretraining panel has no single cutoff to count absolute time points from."
        )
    steps = np.asarray(fh.to_numpy(), dtype=np.int64)
    if steps.min() < 1:
        raise ValueError(f"pretrain needs positive `fh` steps, got {steps.tolist()}.")
    return int(steps.max())


