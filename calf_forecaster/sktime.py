"""sktime adapter: ``CALFForecaster``, CALF as an sktime forecaster.

The network, its training and its data handling live in the core modules
(:mod:`calf_forecaster.model`, :mod:`calf_forecaster.training`,
:mod:`calf_forecaster.data`); this module only translates between sktime's
data containers and those.

Symbols used in comments: N series (instances) in a panel, L lookback
(``seq_len``), H network horizon (``pred_len_``), M columns (variates).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Hashable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

try:
    from sktime.datatypes import check_is_scitype, update_data
    from sktime.forecasting.base import BaseForecaster, ForecastingHorizon
except ImportError as err:  # pragma: no cover - exercised in a subprocess test
    raise ImportError(
        "calf_forecaster.sktime needs sktime, which is not installed. "
        'Install it with: pip install "calf-forecaster[sktime]"'
    ) from err

if TYPE_CHECKING:
    from torch import nn

    from calf_forecaster.config import CALFConfig, TrainingConfig

__all__ = ["CALFForecaster"]

logger = logging.getLogger(__name__)

# one key per series of a panel: the tuple of its instance index levels; () for a single series
SeriesKey = tuple[Hashable, ...]

_PANEL_MTYPES = ["pd-multiindex", "pd_multiindex_hier"]


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

    Exogenous ``X`` is ignored. NaN or infinite values raise ``ValueError``,
    non-numeric columns ``TypeError``.

    Parameters
    ----------
    seq_len : int, default=96
        Lookback length L, the number of past observations the network reads.
    backbone : str, default="gpt2"
        Hugging Face model id or local directory of a causal language model.
        A hub id is downloaded by ``transformers`` on first use.
    n_layers : int, default=6
        Number of backbone blocks kept (K).
    pretrained : bool, default=True
        Use the backbone's pre-trained weights; ``False`` initialises it at random
        (the "random LLM" ablation).
    llm_mode : {"llm", "none", "attention", "transformer"}, default="llm"
        ``"llm"`` is CALF; the others replace the language model by nothing, one
        attention layer, or one transformer block (the ablations of Tan et al.).
    n_prototypes : int, default=500
        Number of word prototypes P (principal components of the word embeddings).
    lora_r : int, default=8
        LoRA rank of the temporal branch.
    lora_alpha : int, default=32
        LoRA scaling numerator.
    lora_dropout : float, default=0.1
        Dropout on the LoRA input.
    lora_target_modules : list of str or None, default=None
        Modules that receive LoRA; ``None`` picks the backbone's attention input
        projection (``c_attn`` for GPT-2).
    n_heads : int, default=12
        Attention heads of the cross-modal match module; must divide the backbone
        width.
    encoder_ff_dim : int, default=2048
        Feed-forward width of the cross-modal encoder layer.
    dropout : float, default=0.1
        Dropout of the cross-modal encoder layer.
    loss : {"l1", "smooth_l1", "mse"}, default="l1"
        Distance used by every loss term (``"l1"`` for ETT in the paper,
        ``"smooth_l1"`` for Weather, ECL and Traffic).
    supervised_weight : float, default=1.0
        Weight of the supervised loss.
    output_weight : float, default=1.0
        Weight of the output-consistency loss between the two branches.
    feature_weight : float, default=0.01
        Weight of the feature-regularisation loss.
    feature_decay : float, default=0.8
        Decay of the feature-regularisation terms with depth.
    learning_rate : float, default=5e-4
        Adam learning rate of the network (cosine annealed per epoch).
    feature_learning_rate : float, default=1e-4
        Constant Adam learning rate of the feature projections.
    cosine_t_max : int, default=20
        Period of the cosine schedule, in epochs.
    min_learning_rate : float, default=1e-8
        Floor of the cosine schedule.
    batch_size : int, default=256
        Training and prediction batch size, in windows.
    max_epochs : int, default=100
        Most training epochs; ``0`` keeps the initial (or pretrained) weights.
    patience : int, default=10
        Early-stopping patience in epochs, on validation MSE.
    validation_size : float or int, default=0.2
        End of every series held out for early stopping (and restoring the best
        epoch): a fraction of its length if a float in (0, 1), a number of time
        points if an int >= 1 (at least the horizon either way), nothing if 0.
        A series too short to give both parts a window is trained on whole; if no
        series can spare one, or with 0, training runs ``max_epochs`` epochs and
        keeps the last weights.
    scale : bool, default=True
        Standardise every column with mean and standard deviation of the data
        passed to ``fit`` (of ``pretrain`` for pretraining) before windowing, and
        undo it on the forecasts. The network also normalises every window.
    trainer_kwargs : dict or None, default=None
        Extra keyword arguments of the ``pytorch_lightning.Trainer``, e.g.
        ``{"accelerator": "gpu"}``. Not modified.
    trust_remote_code : bool, default=False
        Passed to ``transformers`` when loading ``backbone``.
    revision : str or None, default=None
        Backbone revision (branch, tag or commit) on the Hugging Face hub.
    random_state : int or None, default=None
        Seed of weight initialisation, shuffling and dropout. ``None`` gives a
        different model on every fit; an int makes fits repeatable on one device.

    Attributes
    ----------
    network_ : torch.nn.Module
        The fitted CALF network, on CPU, in eval mode.
    pred_len_ : int
        Horizon H of ``network_``.
    columns_ : pandas.Index
        Columns of ``y`` seen in ``fit``, in order (the network is causal across
        columns, so their order matters).
    scaler_ : calf_forecaster.data.ChannelScaler or None
        Column scaler fitted in ``fit``, ``None`` if ``scale=False``.
    n_train_windows_ : int
        Number of training windows of the last training run (``fit``, or
        ``update`` with ``update_params=True``); 0 with ``max_epochs=0``.
    pretrained_network_ : torch.nn.Module
        Network learned by ``pretrain`` (only after ``pretrain``); ``fit`` fine-tunes
        a copy of it and leaves it unchanged.
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

    ``pickle`` and sktime's ``save`` store each network in the core's saved-model
    format (configuration and the weights that are not the pre-trained
    backbone's, see :mod:`calf_forecaster.persistence`), not the backbone itself:
    loading rebuilds the backbone from ``backbone``, which must still be
    available (local directory or hub cache), and refuses one whose word
    embeddings differ.

    References
    ----------
    .. [1] Liu, P. et al. CALF: Aligning LLMs for Time Series Forecasting via
       Cross-modal Fine-Tuning. AAAI 2025.
    .. [2] Tan, M. et al. Are Language Models Actually Useful for Time Series
       Forecasting? NeurIPS 2024.

    Examples
    --------
    A tiny randomly initialised GPT-2 keeps the example offline and fast:

    >>> import tempfile
    >>> from transformers import GPT2Config, GPT2Model
    >>> from sktime.datasets import load_airline
    >>> from calf_forecaster.sktime import CALFForecaster
    >>> folder = tempfile.TemporaryDirectory()
    >>> backbone = folder.name
    >>> GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=64,
    ...     n_positions=32, bos_token_id=0, eos_token_id=0)).save_pretrained(backbone)
    >>> y = load_airline()
    >>> forecaster = CALFForecaster(
    ...     seq_len=24, backbone=backbone, n_layers=2, n_heads=4, n_prototypes=16,
    ...     encoder_ff_dim=64, max_epochs=2, validation_size=0,
    ...     trainer_kwargs={"enable_progress_bar": False}, random_state=0,
    ... )
    >>> forecaster.fit(y, fh=[1, 2, 3])  # doctest: +ELLIPSIS
    CALFForecaster(...)
    >>> forecaster.predict().shape
    (3,)
    >>> folder.cleanup()

    The published configuration uses GPT-2 small from the Hugging Face hub:

    >>> forecaster = CALFForecaster(backbone="gpt2")  # doctest: +SKIP
    >>> forecaster.fit(y, fh=list(range(1, 97)))  # doctest: +SKIP
    """

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
        # X is ignored, but listing panel mtypes keeps a panel X from forcing
        # sktime to vectorise (one model per series) before it drops X
        "X_inner_mtype": ["pd.DataFrame", *_PANEL_MTYPES],
        "capability:exogenous": False,  # X is ignored
        "requires-fh-in-fit": True,  # the horizon sets the network's output size
        "capability:insample": False,  # forecasts start after the cutoff only
        "capability:pred_int": False,  # point forecasts only
        "capability:pred_int:insample": False,
        "capability:missing_values": False,  # NaN raises ValueError
        "capability:unequal_length": True,  # panel series may differ in length
        "capability:update": True,  # native _update: new context, optional warm start
        "capability:pretrain": True,  # pretrain on a panel, fine-tune in fit
        # attributes learned by pretrain; kept when fit resets fitted state
        "pretrain:fitted_params": [
            "pretrained_network_",
            "pretrain_pred_len_",
            "pretrain_columns_",
            "n_pretrain_instances_",
        ],
        # training is stochastic; random_state makes it repeatable
        "property:randomness": "derandomized",
        "capability:random_state": True,
        "fit_is_empty": False,
    }

    def __init__(
        self,
        seq_len: int = 96,
        backbone: str = "gpt2",
        n_layers: int = 6,
        pretrained: bool = True,
        llm_mode: str = "llm",
        n_prototypes: int = 500,
        lora_r: int = 8,
        lora_alpha: int = 32,
        lora_dropout: float = 0.1,
        lora_target_modules: Sequence[str] | None = None,
        n_heads: int = 12,
        encoder_ff_dim: int = 2048,
        dropout: float = 0.1,
        loss: str = "l1",
        supervised_weight: float = 1.0,
        output_weight: float = 1.0,
        feature_weight: float = 0.01,
        feature_decay: float = 0.8,
        learning_rate: float = 5e-4,
        feature_learning_rate: float = 1e-4,
        cosine_t_max: int = 20,
        min_learning_rate: float = 1e-8,
        batch_size: int = 256,
        max_epochs: int = 100,
        patience: int = 10,
        validation_size: float | int = 0.2,
        scale: bool = True,
        trainer_kwargs: dict[str, Any] | None = None,
        trust_remote_code: bool = False,
        revision: str | None = None,
        random_state: int | None = None,
    ) -> None:
        self.seq_len = seq_len
        self.backbone = backbone
        self.n_layers = n_layers
        self.pretrained = pretrained
        self.llm_mode = llm_mode
        self.n_prototypes = n_prototypes
        self.lora_r = lora_r
        self.lora_alpha = lora_alpha
        self.lora_dropout = lora_dropout
        self.lora_target_modules = lora_target_modules
        self.n_heads = n_heads
        self.encoder_ff_dim = encoder_ff_dim
        self.dropout = dropout
        self.loss = loss
        self.supervised_weight = supervised_weight
        self.output_weight = output_weight
        self.feature_weight = feature_weight
        self.feature_decay = feature_decay
        self.learning_rate = learning_rate
        self.feature_learning_rate = feature_learning_rate
        self.cosine_t_max = cosine_t_max
        self.min_learning_rate = min_learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_size = validation_size
        self.scale = scale
        self.trainer_kwargs = trainer_kwargs
        self.trust_remote_code = trust_remote_code
        self.revision = revision
        self.random_state = random_state
        super().__init__()

    # ------------------------------------------------------------------ public

    def update(self, y, X=None, update_params: bool = True) -> CALFForecaster:
        """Append new observations and optionally continue training.

        Same contract as :meth:`sktime.forecasting.base.BaseForecaster.update`, with
        checks made before any state changes (so a refused ``y`` leaves the cutoff and
        the history as they were): ``y`` must have the columns seen in ``fit``, in the
        same order, and finite numeric values.

        Parameters
        ----------
        y : sktime time series container
            New observations, same scitype and columns as in ``fit``.
        X : ignored
            Exogenous data are not used.
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
            If the columns of ``y`` differ from those seen in ``fit``, or ``y`` holds
            NaN or infinite values.
        TypeError
            If ``y`` has non-numeric columns.
        """
        if self.is_fitted and y is not None and len(y) > 0:
            self._check_update_data(y, update_params)
        return super().update(y, X=X, update_params=update_params)

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
        X : ignored
            Exogenous data are not used.
        update_params : bool, default=True
            Whether to continue training before forecasting.

        Returns
        -------
        pandas.Series or pandas.DataFrame
            Forecasts, in the container type of ``y``.
        """
        if self.is_fitted and y is not None and len(y) > 0:
            self._check_update_data(y, update_params)
        return super().update_predict_single(y=y, fh=fh, X=X, update_params=update_params)

    def __getstate__(self) -> dict[str, Any]:
        """Return the state to pickle, with every network in CALF's portable saved format.

        ``pickle`` (and so sktime's ``save``) stores each network as the files of
        :func:`calf_forecaster.persistence.save_calf`: configuration and the weights that
        are not the pre-trained backbone's. Unpickling rebuilds the backbone from
        ``backbone``, which must still be loadable (local path or hub cache), and refuses
        one with other word embeddings.
        """
        from torch import nn

        state = self.__dict__.copy()
        for name, value in state.items():
            if isinstance(value, nn.Module):
                state[name] = _SavedNetwork.from_module(value)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickled state, rebuilding every network saved by ``__getstate__``."""
        state = {
            name: value.to_module() if isinstance(value, _SavedNetwork) else value
            for name, value in state.items()
        }
        self.__dict__.update(state)

    def __copy__(self) -> CALFForecaster:
        """Return a shallow copy (shares the networks; no pickling round trip)."""
        copied = type(self).__new__(type(self))
        copied.__dict__.update(self.__dict__)
        return copied

    def __deepcopy__(self, memo: dict[int, Any]) -> CALFForecaster:
        """Return a deep copy made in memory (networks copied directly, not via pickle)."""
        copied = type(self).__new__(type(self))
        memo[id(self)] = copied
        copied.__dict__.update(copy.deepcopy(self.__dict__, memo))
        return copied

    # ---------------------------------------------------------- sktime hooks

    def _fit(self, y: pd.DataFrame, X: pd.DataFrame | None, fh: ForecastingHorizon):
        """Train the network on every series of ``y``.

        Parameters
        ----------
        y : pandas.DataFrame
            Single series (plain index) or panel/hierarchy (row MultiIndex).
        X : ignored
        fh : ForecastingHorizon
            Horizon; its largest relative step becomes the network's horizon.

        Returns
        -------
        CALFForecaster
            ``self``.
        """
        series = _split_series(y)
        steps = self._relative_steps(fh, series)
        pred_len = int(max(s.max() for s in steps.values()))

        if hasattr(self, "pretrained_network_"):
            if pred_len > self.pretrain_pred_len_:
                raise ValueError(
                    f"`fh` reaches {pred_len} steps ahead, beyond the horizon of "
                    f"{self.pretrain_pred_len_} steps the network was pretrained for. "
                    "Pass an fh within it, or pretrain again with a longer fh."
                )
            pred_len = self.pretrain_pred_len_
            network = copy.deepcopy(self.pretrained_network_)
            logger.info("Fine-tuning the pretrained network (horizon %d).", pred_len)
        else:
            network = self._build_network(pred_len)

        arrays = self._checked_arrays(series, min_length=self.seq_len + pred_len, what="fit")
        scaler = self._fit_scaler(arrays)
        self.n_train_windows_ = self._train(network, arrays, scaler, pred_len)

        self.network_ = network
        self.pred_len_ = pred_len
        self.columns_ = y.columns.copy()
        self.scaler_ = scaler
        self._cur_y = y
        return self

    def _predict(self, fh: ForecastingHorizon, X: pd.DataFrame | None = None) -> pd.DataFrame:
        """Forecast every series from its last ``seq_len`` observations.

        Parameters
        ----------
        fh : ForecastingHorizon
            Horizon, relative steps within ``1..pred_len_``.
        X : ignored

        Returns
        -------
        pandas.DataFrame
            Forecasts with the columns of ``fit``; row MultiIndex for panels.
        """
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
        arrays = self._checked_arrays(series, min_length=self.seq_len, what="predict")
        context = np.stack([a[-self.seq_len :] for a in arrays])  # (N, L, M)
        forecast = self._forecast_windows(context)  # (N, H, M)

        frames = []
        for (key, frame), values in zip(series.items(), forecast, strict=True):
            index = _absolute_index(fh, frame.index, self._cutoff).rename(frame.index.name)
            rows = steps[key] - 1  # step 1 is row 0
            frames.append(pd.DataFrame(values[rows], index=index, columns=self.columns_))
        return _join_series(list(series), frames, self._cur_y.index)

    def _update(self, y: pd.DataFrame, X: pd.DataFrame | None = None, update_params: bool = True):
        """Append ``y`` to the history; if asked, continue training on all of it.

        Parameters
        ----------
        y : pandas.DataFrame
            New observations, same columns as in ``fit``.
        X : ignored
        update_params : bool, default=True
            Whether to continue training the network.

        Returns
        -------
        CALFForecaster
            ``self``.
        """
        self._cur_y = update_data(self._cur_y, y)
        if update_params:
            series = _split_series(self._cur_y)
            arrays = self._checked_arrays(
                series, min_length=self.seq_len + self.pred_len_, what="update"
            )
            self.n_train_windows_ = self._train(
                self.network_, arrays, self.scaler_, self.pred_len_
            )
        return self

    def _pretrain(self, y: pd.DataFrame, X: pd.DataFrame | None = None, fh=None):
        """Train a network on a panel, to be fine-tuned later by ``fit``.

        Parameters
        ----------
        y : pandas.DataFrame
            Panel or hierarchical data (row MultiIndex).
        X : ignored
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
        network = self._build_network(pred_len)
        series = _split_series(y)
        arrays = self._checked_arrays(series, min_length=self.seq_len + pred_len, what="pretrain")
        self._train(network, arrays, self._fit_scaler(arrays), pred_len)

        self.pretrained_network_ = network
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
        X : ignored
        fh : ForecastingHorizon or None
            ``None`` keeps the pretraining horizon; otherwise it may not exceed it.

        Returns
        -------
        CALFForecaster
            ``self``.
        """
        if not hasattr(self, "pretrained_network_"):  # fitted, but never pretrained
            return self._pretrain(y, X=X, fh=fh)
        pred_len = self.pretrain_pred_len_
        if fh is not None and _pretrain_horizon(fh) > pred_len:
            raise ValueError(
                f"`fh` reaches {_pretrain_horizon(fh)} steps ahead, beyond the horizon of "
                f"{pred_len} steps of the pretrained network."
            )
        series = _split_series(y)
        arrays = self._checked_arrays(series, min_length=self.seq_len + pred_len, what="pretrain")
        self._train(self.pretrained_network_, arrays, self._fit_scaler(arrays), pred_len)
        self.n_pretrain_instances_ += len(series)
        return self

    # ----------------------------------------------------------------- helpers

    def _calf_config(self, pred_len: int) -> CALFConfig:
        """Return the network configuration for horizon ``pred_len``."""
        from calf_forecaster.config import CALFConfig

        targets = self.lora_target_modules
        return CALFConfig(
            seq_len=self.seq_len,
            pred_len=pred_len,
            backbone=self.backbone,
            n_layers=self.n_layers,
            pretrained=self.pretrained,
            llm_mode=self.llm_mode,
            n_prototypes=self.n_prototypes,
            lora_r=self.lora_r,
            lora_alpha=self.lora_alpha,
            lora_dropout=self.lora_dropout,
            lora_target_modules=None if targets is None else tuple(targets),
            n_heads=self.n_heads,
            encoder_ff_dim=self.encoder_ff_dim,
            dropout=self.dropout,
            loss=self.loss,
            supervised_weight=self.supervised_weight,
            output_weight=self.output_weight,
            feature_weight=self.feature_weight,
            feature_decay=self.feature_decay,
            trust_remote_code=self.trust_remote_code,
            revision=self.revision,
        )

    def _training_config(self) -> TrainingConfig:
        """Return the training recipe, seeded by ``random_state``."""
        from calf_forecaster.config import TrainingConfig

        return TrainingConfig(
            learning_rate=self.learning_rate,
            feature_learning_rate=self.feature_learning_rate,
            cosine_t_max=self.cosine_t_max,
            min_learning_rate=self.min_learning_rate,
            batch_size=self.batch_size,
            max_epochs=max(self._max_epochs(), 1),  # 0 (no training) is the adapter's own case
            patience=self.patience,
            seed=self._seed(),
        )

    def _max_epochs(self) -> int:
        """Return ``max_epochs`` checked to be an int >= 0."""
        epochs = self.max_epochs
        if isinstance(epochs, (bool, np.bool_)) or not isinstance(epochs, (int, np.integer)):
            raise TypeError(f"`max_epochs` must be an int, got {epochs!r}.")
        if epochs < 0:
            raise ValueError(f"`max_epochs` must be >= 0, got {epochs}.")
        return int(epochs)

    def _seed(self) -> int | None:
        """Return ``random_state`` checked to be an int or None."""
        seed = self.random_state
        if seed is None:
            return None
        if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"`random_state` must be an int or None, got {seed!r}.")
        return int(seed)

    def _build_network(self, pred_len: int) -> nn.Module:
        """Build a CALF network for horizon ``pred_len``, seeded by ``random_state``."""
        import torch

        from calf_forecaster.model import CALF

        config = self._calf_config(pred_len)
        seed = self._seed()
        # fork the global RNG so that seeding here leaves the caller's RNG untouched
        with torch.random.fork_rng(devices=[]):
            if seed is not None:
                torch.manual_seed(seed)
            return CALF(config)

    def _fit_scaler(self, arrays: list[np.ndarray]):
        """Return a ChannelScaler fitted on ``arrays``, or None if ``scale=False``."""
        from calf_forecaster.data import ChannelScaler

        if not self.scale:
            return None
        scaler = ChannelScaler()
        scaler.fit(arrays)
        return scaler

    def _validation_size(self) -> float | int:
        """Return ``validation_size`` checked for type and range."""
        size = self.validation_size
        if size is None or isinstance(size, (bool, np.bool_)):
            raise TypeError(f"`validation_size` must be a float or an int, got {size!r}.")
        if isinstance(size, (int, np.integer)):
            if size < 0:
                raise ValueError(f"`validation_size` must be >= 0, got {size}.")
            return int(size)
        if isinstance(size, (float, np.floating)) and 0.0 <= size < 1.0:
            return float(size)
        raise ValueError(
            "`validation_size` must be a float in [0, 1) (a fraction of every series) "
            f"or an int >= 0 (a number of time points), got {size!r}."
        )

    def _train(self, network: nn.Module, arrays: list[np.ndarray], scaler, pred_len: int) -> int:
        """Train ``network`` in place on the windows of ``arrays``; return their number.

        The network is left on CPU in eval mode, whatever device trained it. With
        ``max_epochs=0`` it is left as it is and 0 is returned.
        """
        from calf_forecaster.data import WindowDataset, split_for_validation
        from calf_forecaster.training import train_calf

        training_config = self._training_config()  # validates the recipe even for 0 epochs
        validation_size = self._validation_size()
        if self._max_epochs() == 0:
            logger.info("max_epochs=0: the network keeps its current weights.")
            network.to("cpu").eval()
            return 0
        scaled = arrays if scaler is None else [scaler.transform(a) for a in arrays]
        val_series: list[np.ndarray] = []
        train_series = scaled
        if validation_size:
            train_series, val_series = split_for_validation(
                scaled, validation_size, self.seq_len, pred_len
            )
            if not val_series:
                logger.warning(
                    "validation_size=%r leaves no series long enough for a validation "
                    "window; training %d epochs without early stopping.",
                    validation_size,
                    training_config.max_epochs,
                )
        train_data = WindowDataset(train_series, self.seq_len, pred_len)
        val_data = WindowDataset(val_series, self.seq_len, pred_len) if val_series else None
        logger.info(
            "Training CALF on %d windows (%d validation) from %d series.",
            len(train_data),
            0 if val_data is None else len(val_data),
            len(arrays),
        )
        train_calf(
            network,
            train_data,
            val_data,
            training_config,
            trainer_kwargs=dict(self.trainer_kwargs or {}),
        )
        network.to("cpu").eval()
        return len(train_data)

    def _forecast_windows(self, context: np.ndarray) -> np.ndarray:
        """Forecast (N, L, M) raw context windows; return (N, H, M) raw forecasts."""
        from calf_forecaster.training import predict_windows

        scaler = self.scaler_
        x = context if scaler is None else scaler.transform(context)  # (N, L, M)
        device = self._inference_device()
        network = self.network_
        try:
            if device != "cpu":
                network.to(device)
            forecast = predict_windows(network, x, self.batch_size, device=device)
        finally:
            if device != "cpu":
                network.to("cpu")
        forecast = np.asarray(forecast, dtype=np.float64)
        if scaler is not None:
            forecast = scaler.inverse_transform(forecast)  # (N, H, M)
        return forecast

    def _inference_device(self) -> str:
        """Return "cuda" if ``trainer_kwargs`` asks for a GPU and one is present, else "cpu"."""
        import torch

        accelerator = str((self.trainer_kwargs or {}).get("accelerator", "cpu")).lower()
        if accelerator in ("gpu", "cuda") and torch.cuda.is_available():
            return "cuda"
        return "cpu"

    def _checked_arrays(
        self, series: dict[SeriesKey, pd.DataFrame], min_length: int, what: str
    ) -> list[np.ndarray]:
        """Return the float64 (T, M) values of every series, refusing bad or short ones.

        Raises ``TypeError`` for non-numeric columns, ``ValueError`` for NaN or infinite
        values and for series shorter than ``min_length``.
        """
        from calf_forecaster.data import check_values

        arrays = []
        for key, frame in series.items():
            values = check_values(frame.to_numpy(), f"y{_describe(key)}")
            if len(values) < min_length:
                horizon = min_length - self.seq_len
                raise ValueError(
                    f"y{_describe(key)} has {len(values)} time points, but {what} needs "
                    f"at least {min_length} (seq_len={self.seq_len}"
                    + (f" + {horizon} steps of horizon after the series' end" if horizon else "")
                    + "). CALFForecaster does not pad short series: use a shorter "
                    "seq_len or horizon, or a longer series."
                )
            arrays.append(values)
        return arrays

    def _check_update_data(self, y, update_params: bool) -> None:
        """Refuse ``y`` for ``update`` if its columns, values or lengths do not fit the model."""
        from sktime.datatypes import convert_to

        valid, _, metadata = check_is_scitype(
            y,
            scitype=["Series", "Panel", "Hierarchical"],
            return_metadata=["n_features", "feature_names"],
        )
        if not valid:
            return  # sktime's own checks raise the error for invalid containers
        expected = list(self.columns_)
        if metadata["n_features"] != len(expected) or (
            isinstance(y, pd.DataFrame) and list(metadata["feature_names"]) != expected
        ):
            raise ValueError(
                f"y passed to update has columns {list(metadata['feature_names'])}, but "
                f"CALFForecaster was fitted on columns {expected}. Pass the same columns "
                "in the same order (the network is causal across columns), or refit."
            )
        inner = convert_to(y, to_type=self.get_tag("y_inner_mtype"), as_scitype=metadata["scitype"])
        new_series = _split_series(inner)
        self._checked_arrays(new_series, min_length=0, what="update")
        # a series new to the panel must be long enough to forecast (and to train on)
        history = _split_series(self._cur_y)
        required = self.seq_len + (self.pred_len_ if update_params else 0)
        for key, frame in new_series.items():
            seen = history.get(key)
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

        Both sets use a tiny randomly initialised GPT-2 that is built and saved to a
        temporary directory on first use (no network access).

        Parameters
        ----------
        parameter_set : str, default="default"
            Name of the set; only "default" exists.

        Returns
        -------
        list of dict
            Two parameter sets; their windows fit sktime's shortest test series
            (10 time points with a 3-step horizon).
        """
        backbone = _tiny_backbone()
        common = {
            "backbone": backbone,
            "n_layers": 2,
            "n_heads": 4,
            "n_prototypes": 8,
            "encoder_ff_dim": 16,
            "batch_size": 64,  # one optimiser step per epoch on sktime's test series
            "trainer_kwargs": {"enable_progress_bar": False, "logger": False},
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
        ]


# ------------------------------------------------------------------ pickling networks


class _SavedNetwork:
    """Picklable stand-in for a CALF network: the files written by ``save_calf``.

    Parameters
    ----------
    files : dict of str to bytes
        File name -> content of the saved-model directory.
    """

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files

    @classmethod
    def from_module(cls, network: nn.Module) -> _SavedNetwork:
        """Save ``network`` with :func:`~calf_forecaster.persistence.save_calf`, keep the bytes."""
        import tempfile
        from pathlib import Path

        from calf_forecaster.persistence import save_calf

        with tempfile.TemporaryDirectory(prefix="calf-pickle-") as directory:
            save_calf(network, directory)
            return cls({p.name: p.read_bytes() for p in Path(directory).iterdir()})

    def to_module(self) -> nn.Module:
        """Rebuild the network with :func:`~calf_forecaster.persistence.load_calf` (CPU, eval)."""
        import tempfile
        from pathlib import Path

        from calf_forecaster.persistence import load_calf

        with tempfile.TemporaryDirectory(prefix="calf-unpickle-") as directory:
            for name, content in self.files.items():
                (Path(directory) / name).write_bytes(content)
            network, _ = load_calf(directory)
        return network


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


def _series_cutoff(time_index: pd.Index, global_cutoff: pd.Index) -> pd.Index:
    """Return the last time point of one series as a one-element index with a freq."""
    if len(global_cutoff) == 1 and time_index[-1] == global_cutoff[0]:
        return global_cutoff
    cutoff = time_index[-1:]
    freq = getattr(global_cutoff, "freq", None)
    if freq is not None and hasattr(cutoff, "freq") and not isinstance(cutoff, pd.PeriodIndex):
        cutoff = type(cutoff)(cutoff, freq=freq)
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


_TINY_BACKBONES: dict[str, str] = {}


def _tiny_backbone() -> str:
    """Return the directory of a tiny random GPT-2, built once per process, offline.

    Only for tests: 2 blocks, width 32, 4 heads, 64-token vocabulary.
    """
    if "gpt2" not in _TINY_BACKBONES:
        import atexit
        import shutil
        import tempfile

        import torch
        from transformers import GPT2Config, GPT2Model

        directory = tempfile.mkdtemp(prefix="calf-tiny-gpt2-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        config = GPT2Config(
            n_layer=2,
            n_embd=32,
            n_head=4,
            vocab_size=64,
            n_positions=32,
            bos_token_id=0,
            eos_token_id=0,
        )
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            GPT2Model(config).save_pretrained(directory)
        _TINY_BACKBONES["gpt2"] = directory
    return _TINY_BACKBONES["gpt2"]
