"""CALF as a darts ``TorchForecastingModel``: :class:`CALFModel`.

Symbols
-------
B  batch size                         L  ``input_chunk_length`` (CALF's ``seq_len``)
H  ``output_chunk_length``            Q  likelihood parameters per value (1 without likelihood)
C  target components                  C_p  past-covariate components
M  variate tokens, ``C_p + C``

Data flow of one batch: darts' ``past_covariates`` (B, L, C_p) and ``past_target`` (B, L, C) are
joined into (B, L, M) with the covariates *first*: the backbone is causal over variate tokens, so
only tokens placed before the targets can inform them. The core network forecasts every token; the
last C tokens are the targets. With ``QuantileRegression`` the core network is a quantile model
(``CALFConfig.quantiles`` = the likelihood's quantiles): it forecasts (B, H, M, Q) itself, already
darts' layout; without likelihood Q = 1.

Training goes through darts' own loop. The only training hook overridden is
``PLForecastingModule._compute_loss``: darts' loss (``loss_fn`` with sample weights, or for
``QuantileRegression`` the core's :func:`~calf_forecaster.losses.pinball_loss`, which is darts'
quantile loss term for term) becomes CALF's supervised term, and the output-consistency and
feature-regularisation terms of ``docs/method.md`` §3 are added to it. The textual branch runs in
training steps only; validation and prediction use the temporal branch alone.
"""

from __future__ import annotations

import copy
import inspect
import logging
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

try:
    from darts import TimeSeries
    from darts.models.forecasting.pl_forecasting_module import (
        PLForecastingModule,
        io_processor,
    )
    from darts.models.forecasting.torch_forecasting_model import (
        PastCovariatesTorchModel,
        TorchForecastingModel,
    )
    from darts.utils.data.torch_datasets.utils import (
        ModuleStage,
        PLModuleInput,
        PLModuleOutput,
        TorchTrainingSample,
    )
    from darts.utils.likelihood_models.torch import QuantileRegression
    from darts.utils.serialization import add_safe_globals
except ImportError as error:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "calf_forecaster.darts needs darts, which is not installed. "
        'Install it with: pip install "calf-forecaster[darts]"'
    ) from error

from calf_forecaster.config import CALFConfig, TrainingConfig
from calf_forecaster.losses import DISTANCES, calf_loss, distance, pinball_loss
from calf_forecaster.model import CALFOutput
from calf_forecaster.parameters import (
    Parameter,
    config_parameters,
    make_init,
    numpydoc_parameters,
    split_values,
)
from calf_forecaster.persistence import (
    FINGERPRINT_KEY,
    check_backbone,
    frozen_backbone_keys,
    strip_backbone,
)
from calf_forecaster.pipeline import build_network, check_variates
from calf_forecaster.preprocessing import warn_below_normalisation_floor
from calf_forecaster.training import build_optimizer, quiet_lightning

logger = logging.getLogger(__name__)

#: darts' logger that warns "Detected user-defined float16-like precision" for any precision
#: containing "16", including the two it recommends in the same message.
_DARTS_MODEL_LOGGER = "darts.models.forecasting.torch_forecasting_model"
_DARTS_RECOMMENDED_PRECISIONS = ("bf16-mixed", "16-mixed")


class _RecommendedPrecisionFilter(logging.Filter):
    """Drops darts' float16 warning, which darts emits for its own recommended settings."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Detected user-defined float16-like precision")


def quiet_darts(model: Any, verbose: bool = False) -> Any:
    """A context for a darts model's ``fit`` / ``predict``: :func:`quiet_lightning`, and none of
    darts' float16 warning when the model's precision is ``bf16-mixed`` or ``16-mixed`` (any
    darts torch model; ``calf-bench`` uses it for the darts baselines)."""
    import contextlib

    stack = contextlib.ExitStack()
    stack.enter_context(quiet_lightning(verbose))
    precision = str(getattr(model, "trainer_params", {}).get("precision"))
    if precision in _DARTS_RECOMMENDED_PRECISIONS:
        darts_logger, dropped = logging.getLogger(_DARTS_MODEL_LOGGER), _RecommendedPrecisionFilter()
        darts_logger.addFilter(dropped)
        stack.callback(darts_logger.removeFilter, dropped)
    return stack

__all__ = ["CALFModel"]

#: The constructor: darts' chunk lengths, every CALFConfig field but the two lengths, and the
#: TrainingConfig fields that darts has no name of its own for (darts: ``optimizer_kwargs["lr"]``,
#: ``batch_size``, ``n_epochs``, ``random_state``, early stopping through callbacks, ``val_series``,
#: darts' ``Scaler``, and darts' validation loss: its ``loss_fn``), then darts' own parameters
#: as ``**kwargs``.
DARTS_NAMED = ("learning_rate", "batch_size", "max_epochs", "patience", "validation_size", "scale",
               "validation_loss", "seed")
PARAMETERS: list[Parameter] = [
    Parameter("output_chunk_shift", 0, "int",
              "Steps between the end of the input and the start of the output chunk (darts "
              "semantics)."),
    # darts names the quantile levels itself: `likelihood=QuantileRegression(quantiles)`
    *config_parameters(CALFConfig, exclude=["seq_len", "pred_len", "quantiles"]),
    *config_parameters(TrainingConfig, exclude=DARTS_NAMED),
]
LEADING = ("input_chunk_length", "output_chunk_length")

#: Lightning scheduler-config keys that darts accepts inside ``lr_scheduler_kwargs``.
_LIGHTNING_SCHEDULER_DEFAULTS: dict[str, Any] = {
    "monitor": "val_loss", "interval": "epoch", "frequency": 1, "strict": True, "name": None,
}


@dataclass(slots=True)
class _CALFModuleOutput(PLModuleOutput):
    """darts' module output plus the core network's output (in training steps only)."""

    calf: CALFOutput | None = None


class _CALFModule(PLForecastingModule):
    """darts Lightning module around the core :class:`~calf_forecaster.model.CALF` network.

    Parameters
    ----------
    backbone
        Hugging Face name or local directory of the backbone; a separate argument so that
        ``CALFModel.load(path, backbone=new_location)`` can point to a moved backbone.
    calf_config
        ``CALFConfig.to_dict()`` without ``seq_len``, ``pred_len`` and ``backbone``, which follow
        from the chunk lengths and ``backbone``; ``quantiles`` always follows the likelihood.
    training_config
        ``TrainingConfig.to_dict()``: losses, learning rates, schedule and grouping.
    nr_params
        Q, the likelihood's number of parameters (1 without likelihood).
    seed
        Seed of the initial weights (:func:`calf_forecaster.pipeline.build_network`).
    **kwargs
        :class:`~darts.models.forecasting.pl_forecasting_module.PLForecastingModule` parameters.
    """

    def __init__(
        self,
        backbone: str,
        calf_config: dict[str, Any],
        training_config: dict[str, Any],
        nr_params: int,
        seed: int | None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.nr_params = nr_params
        self.training_config = TrainingConfig.from_dict(training_config)
        # The core's quantile head: (B, H, M, Q) in darts' layout. Its head weights are laid out
        # as those of this adapter's earlier Q * H point head, so older saved models still load.
        quantiles = (tuple(self.likelihood.quantiles)
                     if isinstance(self.likelihood, QuantileRegression) else None)
        self.calf = build_network(CALFConfig.from_dict({
            **calf_config,
            "backbone": backbone,
            "seq_len": self.input_chunk_length,
            "pred_len": self.output_chunk_length,
            "quantiles": quantiles,
        }), seed)

    @io_processor
    def forward(self, x_in: PLModuleInput) -> PLModuleOutput:
        """darts batch -> prediction (B, H, C, Q); in training steps also the core's output."""
        parts = [t for t in (x_in.past_covariates, x_in.past_target) if t is not None]
        x = torch.cat(parts, dim=2)  # (B, L, M): covariates first, targets last
        with_text_branch = x_in.stage == ModuleStage.TRAIN
        output = self.calf(x, with_text_branch=with_text_branch)
        forecast = output.forecast[:, :, -self.n_targets:]  # (B, H, C, Q) or (B, H, C)
        prediction = forecast if forecast.ndim == 4 else forecast.unsqueeze(-1)  # (B, H, C, Q)
        return _CALFModuleOutput(prediction=prediction, calf=output if with_text_branch else None)

    def _compute_loss(
        self,
        output: PLModuleOutput,
        target: torch.Tensor,
        criterion: nn.Module,
        sample_weight: torch.Tensor | None,
    ) -> torch.Tensor:
        """darts' loss as CALF's supervised term, plus the distillation terms in training.

        ``QuantileRegression``'s loss is the core's :func:`~calf_forecaster.losses.pinball_loss`
        (darts' formula, one implementation for both adapters).
        """
        if isinstance(self.likelihood, QuantileRegression):
            supervised = pinball_loss(output.prediction, target, self.calf.config.quantiles,
                                      sample_weight)
        else:
            supervised = super()._compute_loss(output, target, criterion, sample_weight)
        calf_output = getattr(output, "calf", None)
        if calf_output is None:
            return supervised  # validation: the forecasting loss alone
        # calf_loss scores the last C tokens (every quantile of the two branches compared, for
        # a quantile model), and `supervised` replaces its own supervised term.
        parts = calf_loss(calf_output, target, self.training_config, supervised=supervised)
        batch_size = target.shape[0]
        self.log("train_loss_output", parts.output, batch_size=batch_size, sync_dist=True)
        self.log("train_loss_feature", parts.feature, batch_size=batch_size, sync_dist=True)
        return parts.total

    # ------------------------------------------------------------------ optimisation

    def configure_optimizers(self) -> Any:
        """``optimizer_cls`` over CALF's two parameter groups, with CALF's schedule by default.

        The groups and the per-epoch cosine schedule are the core's
        (:func:`calf_forecaster.training.build_optimizer`); ``optimizer_kwargs`` (whose ``"lr"``
        is the main group's rate) go to ``optimizer_cls``. A given ``lr_scheduler_cls`` is
        configured as darts configures it and applies to both groups.
        """
        optimizer, scheduler = build_optimizer(self.calf, self.training_config,
                                               self.optimizer_cls, self.optimizer_kwargs)
        if self.lr_scheduler_cls is not None:
            return self._configure_user_scheduler(optimizer)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1}}

    def _configure_user_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """``lr_scheduler_cls(**lr_scheduler_kwargs)`` with Lightning's settings, as darts does."""
        kwargs = dict(self.lr_scheduler_kwargs)
        lightning = {key: kwargs.pop(key, default)
                     for key, default in _LIGHTNING_SCHEDULER_DEFAULTS.items()}
        try:
            scheduler = self.lr_scheduler_cls(optimizer=optimizer, **kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"could not build lr_scheduler_cls={self.lr_scheduler_cls} with "
                f"lr_scheduler_kwargs={self.lr_scheduler_kwargs}: {error}"
            ) from error
        return [optimizer], {"scheduler": scheduler, **lightning}

    # ------------------------------------------------------------------ checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """darts' checkpoint without the frozen pre-trained backbone weights (rebuilt on load).

        Backbone weights that ``enable_finetuning`` made trainable are saved.
        """
        super().on_save_checkpoint(checkpoint)
        checkpoint["state_dict"] = strip_backbone(checkpoint["state_dict"], self.calf, "calf.")
        checkpoint[FINGERPRINT_KEY] = self.calf.embedding_fingerprint

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a rebuilt backbone whose word embeddings differ from the training backbone's."""
        super().on_load_checkpoint(checkpoint)
        check_backbone(self.calf, checkpoint.get(FINGERPRINT_KEY),
                       "pass `backbone=` (the original backbone's location) to `CALFModel.load` "
                       "or `CALFModel.load_from_checkpoint`")

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``; the frozen backbone weights may be absent (kept as is)."""
        missing = frozen_backbone_keys(self.calf, "calf.") - set(state_dict)
        if missing:
            own = self.state_dict()
            state_dict = {**state_dict, **{key: own[key] for key in missing}}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class CALFModel(PastCovariatesTorchModel):
    """CALF (Liu et al., AAAI 2025), a language model aligned to time series by cross-modal
    distillation, as a darts global forecasting model.

    Every component of the target and of the past covariates is one token (its last
    ``input_chunk_length`` values). The constructor and its parameter docs are generated from
    :class:`~calf_forecaster.config.CALFConfig` and :class:`~calf_forecaster.config.TrainingConfig`
    (:mod:`calf_forecaster.parameters`). NaN or infinite values in the series, the covariates or
    the prediction context are refused before any work. CALF's per-window normalisation floors the
    variance at 1e-5, so a series whose spread is far below 1e-2 should be scaled first (darts'
    ``Scaler``); ``fit`` warns when it is not. Covariate tokens come first so that the causal backbone lets
    the target tokens attend to them; only target tokens are forecast. Future covariates are
    refused by darts' own check (``supports_future_covariates`` is ``False``). Static covariates,
    which darts would silently ignore for a model that cannot use them, are refused by ``fit``:
    drop them with ``series.with_static_covariates(None)``.

    Parameters
    ----------
    input_chunk_length : int
        Lookback L of every token (CALF's ``seq_len``; 96 in the reference).
    output_chunk_length : int
        Horizon H produced at once (CALF's ``pred_len``). ``predict(n)`` with ``n`` larger than H
        is auto-regressive, as in every darts model.
    {parameters}
    **kwargs
        darts' standard torch-model parameters: ``batch_size``, ``n_epochs``, ``model_name``,
        ``work_dir``, ``log_tensorboard``, ``nr_epochs_val_period``, ``force_reset``,
        ``save_checkpoints``, ``add_encoders`` (past encoders), ``random_state``,
        ``pl_trainer_kwargs``, ``show_warnings``, ``enable_finetuning``, ``loss_fn``,
        ``likelihood``, ``torch_metrics``, ``optimizer_cls``, ``optimizer_kwargs``,
        ``lr_scheduler_cls``, ``lr_scheduler_kwargs``, ``use_reversible_instance_norm``.

    Notes
    -----
    *Optimisation.* ``optimizer_cls`` (Adam) gets two parameter groups: the feature projections
    at ``feature_learning_rate``, everything else with ``optimizer_kwargs``, whose ``"lr"``
    defaults to CALF's 5e-4 instead of the optimizer's own default. A ``lr_scheduler_cls``
    replaces the cosine schedule and applies to both groups. ``random_state`` seeds the initial
    weights exactly as :class:`calf_forecaster.sktime.CALFForecaster` does.

    *Loss.* darts' loss (``loss_fn``, or the likelihood's loss, with any ``sample_weight``) is
    the supervised term; the output-consistency term (``d`` between the two branches'
    forecasts of the target tokens) and the feature term are added in training steps and logged
    as ``train_loss_output`` and ``train_loss_feature``. ``val_loss`` is the supervised loss
    alone, computed without the textual branch.

    *Likelihoods.* Only :class:`~darts.utils.likelihood_models.torch.QuantileRegression` is
    accepted: quantiles are values on the series' scale, which CALF's per-window
    de-normalisation preserves (a scale parameter would not be). The head gives Q =
    ``len(quantiles)`` values per step and token (the core's quantile head, sorted so that they
    never cross, as :class:`calf_forecaster.sktime.CALFForecaster` with ``quantiles=`` builds it),
    trained with the core's pinball loss; the output-consistency term aligns every quantile of
    the two branches and the feature term is unchanged. ``num_samples`` and
    ``predict_likelihood_parameters`` work as for every darts model.

    *Fine-tuning.* By default CALF's trainable-parameter policy applies (LoRA, norms and position
    tables of the backbone, everything outside it). darts' ``enable_finetuning`` overrides it with
    darts' semantics: ``True`` trains every parameter, the whole backbone included; a
    ``{"freeze": [...]}`` or ``{"unfreeze": [...]}`` dict of name patterns (e.g.
    ``"calf.head.*"``) freezes or unfreezes those and does the opposite to all others.

    *Saving.* ``save``, ``load``, ``load_from_checkpoint`` and ``load_weights*`` work as for
    every darts model and need no ``trusted=True``: importing this module registers
    :class:`CALFModel` with ``darts.utils.serialization.add_safe_globals``. Files hold everything
    but the frozen pre-trained backbone weights; loading checks that the backbone's word
    embeddings are unchanged.

    Examples
    --------
    >>> from darts.datasets import ETTh1Dataset  # doctest: +SKIP
    >>> from calf_forecaster.darts import CALFModel
    >>> series = ETTh1Dataset().load().astype("float32")  # doctest: +SKIP
    >>> model = CALFModel(input_chunk_length=96, output_chunk_length=96, batch_size=256,
    ...                   n_epochs=10, random_state=2021)  # doctest: +SKIP
    >>> model.fit(series[:8640])  # doctest: +SKIP
    >>> forecast = model.predict(96)  # doctest: +SKIP

    An ablation of Tan et al. is one argument away: ``CALFModel(..., llm_mode="attention")``.
    """

    def _setup(self, values: dict[str, Any], **kwargs: Any) -> None:
        """``__init__``'s body (the signature is generated from the configs).

        numpy scalars (``np.int64(12)``, e.g. from a grid) become Python numbers before darts
        or torch see them: torch's ``DataLoader`` refuses a numpy ``batch_size``, and darts'
        safe loading refuses pickled numpy scalars.
        """
        values = _python_scalars(values)
        super().__init__(**self._extract_torch_model_params(**_python_scalars(self.model_params)))
        self._model_params = _python_scalars(self._model_params)  # what darts saves and reuses
        self.pl_module_params = self._extract_pl_module_params(**self.model_params)

        likelihood = self.pl_module_params.get("likelihood")
        if likelihood is not None and not isinstance(likelihood, QuantileRegression):
            raise ValueError(
                f"`likelihood` must be None or a darts QuantileRegression, got "
                f"{type(likelihood).__name__}: CALF de-normalises every head output as a value "
                f"on the series' scale, which holds for quantiles only"
            )
        optimizer_kwargs = copy.deepcopy(self.pl_module_params.get("optimizer_kwargs")) or {}
        optimizer_kwargs.setdefault("lr", TrainingConfig.learning_rate)
        # validate every CALF knob now, as darts validates its own (both raise ValueError)
        for name in LEADING:  # named here, not as CALF's seq_len / pred_len
            if not isinstance(values[name], numbers.Integral) or isinstance(values[name], bool) \
                    or values[name] < 1:
                raise ValueError(f"`{name}` must be an int >= 1, got {values[name]!r}")
        fields = split_values(PARAMETERS, values)
        quantiles = None if likelihood is None else likelihood.quantiles
        config = CALFConfig(**fields[CALFConfig], seq_len=values["input_chunk_length"],
                            pred_len=values["output_chunk_length"], quantiles=quantiles)
        training = TrainingConfig(**fields[TrainingConfig], learning_rate=optimizer_kwargs["lr"])
        self._calf_config = {key: value for key, value in config.to_dict().items()
                             if key not in ("seq_len", "pred_len", "backbone", "quantiles")}
        self._training_config = training.to_dict()
        self._backbone = config.backbone
        self.pl_module_params["optimizer_kwargs"] = optimizer_kwargs
        supervised, output, _ = training.term_losses()
        for name, value in (("supervised_loss", supervised), ("output_loss", output)):
            if value not in DISTANCES:  # M4's masked sMAPE / MASE need the M4 sampler's masks
                raise ValueError(
                    f"`{name}`={value!r} needs the masks and lookbacks of the M4 sampler, which "
                    f"darts' training loop does not provide; use one of {sorted(DISTANCES)} "
                    f"(or darts' own `loss_fn` for the supervised term)")
        if self.pl_module_params.get("loss_fn") is None:
            self.pl_module_params["loss_fn"] = distance(supervised)

    def fit(self, series: Any, *args: Any, **kwargs: Any) -> CALFModel:
        """darts' ``fit``, refusing what darts would accept silently, before any work.

        Static covariates (which darts would ignore for this model) and NaN or infinite values
        in ``series``, ``past_covariates`` and their validation counterparts are refused;
        ``n_epochs=0`` is said once (the model stays untrained). Lightning prints nothing unless
        ``verbose=True`` (see :meth:`fit_from_dataset`).
        """
        given = inspect.signature(super().fit).bind_partial(series, *args, **kwargs).arguments
        for name in ("series", "past_covariates", "val_series", "val_past_covariates"):
            _refuse_non_timeseries(name, given.get(name))
            _refuse_non_finite(name, given.get(name))
        for name in ("series", "val_series"):
            _refuse_static_covariates(name, given.get(name))
        targets = _series_list(series)
        if targets:
            warn_below_normalisation_floor(
                [ts.values(copy=False) for ts in targets],
                "Scale the series first, e.g. with darts.dataprocessing.transformers.Scaler.",
                list(targets[0].components))
        if self.n_epochs == 0 and kwargs.get("epochs", 0) == 0:
            logger.warning("n_epochs=0: CALFModel.fit trains nothing; the model keeps its "
                           "initial weights")
        return super().fit(series, *args, **kwargs)

    def fit_from_dataset(self, *args: Any, **kwargs: Any) -> CALFModel:
        """darts' ``fit_from_dataset`` without Lightning's banner and tips unless ``verbose``
        (nor darts' float16 warning for the precisions darts itself recommends)."""
        with quiet_darts(self, bool(kwargs.get("verbose"))):
            return super().fit_from_dataset(*args, **kwargs)

    def predict_from_dataset(self, *args: Any, **kwargs: Any) -> Any:
        """darts' ``predict_from_dataset`` (behind ``predict``, ``historical_forecasts`` and
        ``backtest``) without Lightning's banner and tips unless ``verbose``."""
        with quiet_darts(self, bool(kwargs.get("verbose"))):
            return super().predict_from_dataset(*args, **kwargs)

    def predict(self, n: int, series: Any = None, past_covariates: Any = None,
                *args: Any, **kwargs: Any) -> Any:
        """darts' ``predict``, refusing a horizon below 1 (darts would return a cut or empty
        series), static covariates and NaN or infinite context first."""
        if not isinstance(n, numbers.Integral) or isinstance(n, bool) or n < 1:
            raise ValueError(f"`n` must be a positive integer (the number of steps to forecast), "
                             f"got {n!r}")
        n = int(n)
        _refuse_non_timeseries("series", series)
        _refuse_non_timeseries("past_covariates", past_covariates)
        _refuse_static_covariates("series", series)
        _refuse_non_finite("series", series)
        _refuse_non_finite("past_covariates", past_covariates)
        return super().predict(n, series, past_covariates, *args, **kwargs)

    def _create_model(self, train_sample: TorchTrainingSample) -> _CALFModule:
        """Build the network (an int ``random_state`` seeds its initial weights) and refuse
        more tokens than the backbone's position table holds, before training starts."""
        seed = self.model_params.get("random_state")
        module = _CALFModule(
            backbone=self._backbone,
            calf_config=self._calf_config,
            training_config=self._training_config,
            nr_params=1 if self.likelihood is None else self.likelihood.num_parameters,
            seed=int(seed) if isinstance(seed, numbers.Integral) else None,
            **self.pl_module_params,
        )
        if train_sample is not None:
            shapes = [getattr(train_sample, name) for name in ("past_target", "past_covariates")]
            check_variates(module.calf, sum(s.shape[-1] for s in shapes if s is not None))
        return module

    @property
    def _ckpt_skipped_params(self) -> list[str]:
        """Knobs of training only, which may differ when loading weights into a new model."""
        return super()._ckpt_skipped_params + [
            p.name for p in PARAMETERS if p.config is TrainingConfig]

    # ------------------------------------------------------------------ loading

    def _relocate_backbone(self, backbone: str | None) -> CALFModel:
        """After loading with ``backbone=...``: retrain (``untrained_model``) from there too."""
        if backbone is not None:
            self._backbone = backbone
            self._model_params["backbone"] = backbone
        return self

    @staticmethod
    def load(path: str, pl_trainer_kwargs: dict | None = None, trusted: bool = False,
             **kwargs: Any) -> CALFModel:
        """Load a model saved with :meth:`save` (darts' ``TorchForecastingModel.load``).

        Parameters
        ----------
        path
            Path given to :meth:`save`.
        pl_trainer_kwargs
            Trainer settings for later prediction, e.g. ``{"accelerator": "cpu"}``.
        trusted
            ``True`` disables darts' safe loading; not needed for files written by this class.
        **kwargs
            Passed to Lightning's ``load_from_checkpoint``, e.g. ``map_location="cpu"``, and
            ``backbone="/new/location"`` when the backbone has moved since saving.
        """
        model = TorchForecastingModel.load(path, pl_trainer_kwargs=pl_trainer_kwargs,
                                           trusted=trusted, **kwargs)
        return model._relocate_backbone(kwargs.get("backbone"))

    @staticmethod
    def load_from_checkpoint(model_name: str, work_dir: str | None = None,
                             file_name: str | None = None, best: bool = True,
                             trusted: bool = False, **kwargs: Any) -> CALFModel:
        """Load an automatic checkpoint (``save_checkpoints=True``), as darts does.

        Parameters
        ----------
        model_name, work_dir, file_name, best, trusted
            As in darts' ``TorchForecastingModel.load_from_checkpoint``.
        **kwargs
            Passed to Lightning's ``load_from_checkpoint``, e.g. ``map_location="cpu"``, and
            ``backbone="/new/location"`` when the backbone has moved since saving.
        """
        model = TorchForecastingModel.load_from_checkpoint(
            model_name, work_dir=work_dir, file_name=file_name, best=best, trusted=trusted,
            **kwargs)
        return model._relocate_backbone(kwargs.get("backbone"))


def _python_scalars(value: Any) -> Any:
    """``value`` with numpy scalars replaced by Python ones, inside dicts, lists and tuples."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _python_scalars(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(_python_scalars(item) for item in value)
    return value


def _refuse_non_timeseries(name: str, value: Any) -> None:
    """darts' own type error for pandas and numpy inputs, which darts would misread."""
    if isinstance(value, (pd.DataFrame, pd.Series, np.ndarray)):
        kind = f"{type(value).__module__.split('.')[0]}.{type(value).__name__}"
        raise ValueError(
            f"`{name}` is a {kind}, but input series must be of type `TimeSeries`, "
            f"`Sequence[TimeSeries]`, or `Sequence[Sequence[TimeSeries]]` (darts); convert it "
            f"first, e.g. TimeSeries.from_dataframe(df), TimeSeries.from_series(s) or "
            f"TimeSeries.from_values(array)")


def _series_list(value: Any) -> list[TimeSeries]:
    """The TimeSeries in ``value`` (one, or a sequence of them); other types are darts' to judge."""
    if isinstance(value, TimeSeries):
        return [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, TimeSeries) for v in value):
        return list(value)
    return []


def _refuse_static_covariates(name: str, value: Any) -> None:
    if any(ts.static_covariates is not None for ts in _series_list(value)):
        raise ValueError(
            f"`{name}` carries static covariates, which CALFModel cannot use; drop them "
            f"with `series.with_static_covariates(None)` (darts would ignore them silently)")


def _refuse_non_finite(name: str, value: Any) -> None:
    for position, ts in enumerate(_series_list(value)):
        values = ts.all_values(copy=False)  # (T, C, samples)
        finite = np.isfinite(values)
        if not finite.all():
            step, component, _ = (int(i[0]) for i in np.nonzero(~finite))
            where = f"{name}[{position}]" if isinstance(value, (list, tuple)) else name
            raise ValueError(
                f"`{where}` holds {int((~finite).sum())} NaN or infinite values (first at "
                f"{ts.time_index[step]}, component {ts.components[component]!r}); impute or "
                f"drop them before fitting or predicting (e.g. "
                f"darts.utils.missing_values.fill_missing_values)")


CALFModel.__init__ = make_init(PARAMETERS, CALFModel._setup, leading=LEADING, var_keyword=True,
                               qualname="CALFModel.__init__")
CALFModel.__doc__ = CALFModel.__doc__.replace(
    "    {parameters}\n", numpydoc_parameters(PARAMETERS) + "\n")

# darts' safe loading (``load(..., trusted=False)``) accepts allow-listed globals only.
add_safe_globals([CALFModel])
