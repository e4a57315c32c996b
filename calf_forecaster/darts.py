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
last C tokens are the targets. Its head is built with ``pred_len = Q * H``, so each target token
yields H values per likelihood parameter, reshaped to darts' (B, H, C, Q).

Training goes through darts' own loop. The only training hook overridden is
``PLForecastingModule._compute_loss``: darts' loss (``loss_fn``, or the likelihood's loss, with
sample weights) becomes CALF's supervised term, and the output-consistency and
feature-regularisation terms of ``calf-method.md`` §3 are added to it. The textual branch runs in
training steps only; validation and prediction use the temporal branch alone.
"""

from __future__ import annotations

import copy
import functools
import logging
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

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

from calf_forecaster.config import CALFConfig, LLMMode, LossName, TrainingConfig
from calf_forecaster.losses import calf_loss
from calf_forecaster.model import CALF, CALFOutput
from calf_forecaster.persistence import BackboneMismatchError
from calf_forecaster.training import cosine_factor

logger = logging.getLogger(__name__)

__all__ = ["CALFModel"]

#: CALF's learning rate of the main parameter group (``calf-method.md`` §4); used unless
#: ``optimizer_kwargs`` sets ``"lr"``.
REFERENCE_LEARNING_RATE = 5e-4

#: ``CALFConfig.loss`` -> the torch loss darts uses for the supervised term by default.
SUPERVISED_LOSSES: dict[str, type[nn.Module]] = {
    "l1": nn.L1Loss,
    "smooth_l1": nn.SmoothL1Loss,
    "mse": nn.MSELoss,
}

#: Checkpoint entry with the fingerprint of the backbone's word embeddings.
FINGERPRINT_KEY = "calf_embedding_fingerprint"

#: Lightning scheduler-config keys that darts accepts inside ``lr_scheduler_kwargs``.
_LIGHTNING_SCHEDULER_DEFAULTS: dict[str, Any] = {
    "monitor": "val_loss", "interval": "epoch", "frequency": 1, "strict": True, "name": None,
}


@dataclass(slots=True)
class _CALFModuleOutput(PLModuleOutput):
    """darts' module output plus the core network's output (in training steps only)."""

    calf: CALFOutput | None = None


def _constant_factor(epoch: int) -> float:
    """``LambdaLR`` factor of a constant learning rate."""
    return 1.0


class _CALFModule(PLForecastingModule):
    """darts Lightning module around the core :class:`~calf_forecaster.model.CALF` network.

    Parameters
    ----------
    backbone
        Hugging Face name or local directory of the backbone; a separate argument so that
        ``CALFModel.load(path, backbone=new_location)`` can point to a moved backbone.
    calf_config
        ``CALFConfig.to_dict()`` without ``seq_len``, ``pred_len`` and ``backbone``, which follow
        from the chunk lengths, Q and ``backbone``.
    nr_params
        Q, the likelihood's number of parameters (1 without likelihood).
    feature_learning_rate
        Constant learning rate of the feature projections.
    cosine_t_max, min_learning_rate
        CALF's cosine schedule of the main group, used when ``lr_scheduler_cls`` is ``None``;
        ``cosine_t_max=None`` keeps the learning rates constant.
    **kwargs
        :class:`~darts.models.forecasting.pl_forecasting_module.PLForecastingModule` parameters.
    """

    def __init__(
        self,
        backbone: str,
        calf_config: dict[str, Any],
        nr_params: int,
        feature_learning_rate: float,
        cosine_t_max: int | None,
        min_learning_rate: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.nr_params = nr_params
        self.feature_learning_rate = feature_learning_rate
        self.cosine_t_max = cosine_t_max
        self.min_learning_rate = min_learning_rate
        self.calf = CALF(CALFConfig.from_dict({
            **calf_config,
            "backbone": backbone,
            "seq_len": self.input_chunk_length,
            "pred_len": nr_params * self.output_chunk_length,
        }))

    @io_processor
    def forward(self, x_in: PLModuleInput) -> PLModuleOutput:
        """darts batch -> prediction (B, H, C, Q); in training steps also the core's output."""
        parts = [t for t in (x_in.past_covariates, x_in.past_target) if t is not None]
        x = torch.cat(parts, dim=2)  # (B, L, M): covariates first, targets last
        with_text_branch = x_in.stage == ModuleStage.TRAIN
        output = self.calf(x, with_text_branch=with_text_branch)
        forecast = output.forecast[:, :, -self.n_targets:]  # (B, Q * H, C)
        prediction = forecast.reshape(
            x.shape[0], self.nr_params, self.output_chunk_length, self.n_targets
        ).permute(0, 2, 3, 1)  # (B, H, C, Q)
        return _CALFModuleOutput(prediction=prediction, calf=output if with_text_branch else None)

    def _compute_loss(
        self,
        output: PLModuleOutput,
        target: torch.Tensor,
        criterion: nn.Module,
        sample_weight: torch.Tensor | None,
    ) -> torch.Tensor:
        """darts' loss as CALF's supervised term, plus the distillation terms in training."""
        supervised = super()._compute_loss(output, target, criterion, sample_weight)
        calf_output = getattr(output, "calf", None)
        if calf_output is None:
            return supervised  # validation: the forecasting loss alone
        # calf_loss scores the last C tokens; with Q > 1 their Q * H head outputs are compared
        # between the branches, and `supervised` replaces its own supervised term.
        parts = calf_loss(calf_output, target, self.calf.config, supervised=supervised)
        batch_size = target.shape[0]
        self.log("train_loss_output", parts.output, batch_size=batch_size, sync_dist=True)
        self.log("train_loss_feature", parts.feature, batch_size=batch_size, sync_dist=True)
        return parts.total

    # ------------------------------------------------------------------ optimisation

    def configure_optimizers(self) -> Any:
        """``optimizer_cls`` over CALF's two parameter groups, with CALF's schedule by default.

        The feature projections form their own group at the constant ``feature_learning_rate``;
        every other trainable parameter uses ``optimizer_kwargs``. Without ``lr_scheduler_cls``
        the main group follows CALF's per-epoch cosine schedule (the recipe of
        :func:`calf_forecaster.training.build_optimizer`); a given ``lr_scheduler_cls`` is
        configured as darts configures it and applies to both groups.
        """
        main = list(self.calf.main_parameters())  # the core's split of the trainable weights
        features = [p for p in self.calf.feature_projection_parameters() if p.requires_grad]
        lr = self.optimizer_kwargs.get("lr", REFERENCE_LEARNING_RATE)
        if self.cosine_t_max is None:
            main_factor = _constant_factor
        else:
            recipe = TrainingConfig(learning_rate=lr, cosine_t_max=self.cosine_t_max,
                                    min_learning_rate=self.min_learning_rate)
            main_factor = functools.partial(cosine_factor, base_lr=lr, config=recipe)
        groups, factors = [], []
        if main:
            groups.append({"params": main})
            factors.append(main_factor)
        if features:  # empty when fine-tuning freezes them
            groups.append({"params": features, "lr": self.feature_learning_rate})
            factors.append(_constant_factor)
        try:
            optimizer = self.optimizer_cls(groups, **self.optimizer_kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"could not build optimizer_cls={self.optimizer_cls} with optimizer_kwargs="
                f"{self.optimizer_kwargs}: {error}"
            ) from error
        if self.lr_scheduler_cls is not None:
            return self._configure_user_scheduler(optimizer)
        if self.cosine_t_max is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
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

    def _backbone_state_keys(self) -> set[str]:
        """State-dict keys of this module that are rebuilt from the pre-trained backbone."""
        return {f"calf.{key}" for key in self.calf.backbone_state_keys}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """darts' checkpoint without the frozen pre-trained backbone weights (rebuilt on load).

        Backbone weights that ``enable_finetuning`` made trainable are saved.
        """
        super().on_save_checkpoint(checkpoint)
        trained = {name for name, p in self.named_parameters() if p.requires_grad}
        frozen = self._backbone_state_keys() - trained
        checkpoint["state_dict"] = {key: value for key, value in checkpoint["state_dict"].items()
                                    if key not in frozen}
        checkpoint[FINGERPRINT_KEY] = self.calf.embedding_fingerprint

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a rebuilt backbone whose word embeddings differ from the training backbone's."""
        super().on_load_checkpoint(checkpoint)
        saved = checkpoint.get(FINGERPRINT_KEY)
        if self.calf.backbone_state_keys and saved is not None \
                and saved != self.calf.embedding_fingerprint:
            raise BackboneMismatchError(
                f"the backbone {self.calf.config.backbone!r} has other word embeddings than the "
                f"one this model was trained with; pass `backbone=` (the original backbone's "
                f"location) to `CALFModel.load` or `CALFModel.load_from_checkpoint`"
            )

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """``nn.Module.load_state_dict``; the frozen backbone weights may be absent (kept as is)."""
        missing = self._backbone_state_keys() - set(state_dict)
        if missing:
            own = self.state_dict()
            state_dict = {**state_dict, **{key: own[key] for key in missing}}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


class CALFModel(PastCovariatesTorchModel):
    """CALF (Liu et al., AAAI 2025), a language model aligned to time series by cross-modal
    distillation, as a darts global forecasting model.

    Every component of the target and of the past covariates is one token (its last
    ``input_chunk_length`` values). Covariate tokens come first so that the causal backbone lets
    the target tokens attend to them; only target tokens are forecast. Future covariates are
    refused by darts' own check (``supports_future_covariates`` is ``False``). Static covariates,
    which darts would silently ignore for a model that cannot use them, are refused by ``fit``:
    drop them with ``series.with_static_covariates(None)``.

    Parameters
    ----------
    input_chunk_length
        Lookback L of every token (CALF's ``seq_len``; 96 in the reference).
    output_chunk_length
        Horizon H produced at once (CALF's ``pred_len``). ``predict(n)`` with ``n`` larger than H
        is auto-regressive, as in every darts model.
    output_chunk_shift
        Steps between the end of the input and the start of the output chunk (darts semantics).
    backbone
        Hugging Face name or local directory (``save_pretrained`` output) of the language model.
        Saved models hold everything except its frozen pre-trained weights, which are read from
        here again on loading; pass ``backbone=new_location`` to :meth:`load` if it moved.
    n_layers
        Number K of backbone blocks kept (6).
    pretrained
        Load pre-trained weights; ``False`` keeps the architecture with random weights (ablation).
    llm_mode
        ``"llm"`` (CALF), or an ablation of Tan et al. (NeurIPS 2024) replacing the language
        model: ``"none"``, ``"attention"`` or ``"transformer"``.
    n_prototypes
        Number P of word prototypes (500; at most the backbone width).
    lora_r, lora_alpha, lora_dropout, lora_target_modules
        LoRA on the temporal branch (8, 32, 0.1, the backbone family's default modules).
    n_heads, encoder_ff_dim, dropout
        Cross-modal match module: attention heads (12), feed-forward width (2048), dropout (0.1).
    loss
        Distance ``d`` of CALF's loss terms: ``"l1"`` (reference for ETT), ``"smooth_l1"`` or
        ``"mse"``. Unless ``loss_fn`` or ``likelihood`` is given, also the supervised loss.
    supervised_weight, output_weight, feature_weight, feature_decay
        Loss weights (1.0, 1.0, 0.01) and the per-layer decay of the feature term (0.8).
    feature_learning_rate
        Constant learning rate of the feature projections (1e-4).
    cosine_t_max, min_learning_rate
        Without ``lr_scheduler_cls``, the main learning rate is cosine-annealed per epoch with
        period ``cosine_t_max`` epochs (20) down to ``min_learning_rate`` (1e-8), as in the
        reference; ``cosine_t_max=None`` keeps it constant.
    trust_remote_code, revision
        Passed to transformers when loading ``backbone``.
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
    ``len(quantiles)`` values per step and token, so the output-consistency term aligns every
    quantile of the two branches and the feature term is unchanged. ``num_samples`` and
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

    def __init__(
        self,
        input_chunk_length: int,
        output_chunk_length: int,
        output_chunk_shift: int = 0,
        backbone: str = "gpt2",
        n_layers: int = 6,
        pretrained: bool = True,
        llm_mode: LLMMode = "llm",
        n_prototypes: int = 500,
        lora_r: int = 8,
        lora_alpha: int = 32,
        lora_dropout: float = 0.1,
        lora_target_modules: Sequence[str] | None = None,
        n_heads: int = 12,
        encoder_ff_dim: int = 2048,
        dropout: float = 0.1,
        loss: LossName = "l1",
        supervised_weight: float = 1.0,
        output_weight: float = 1.0,
        feature_weight: float = 0.01,
        feature_decay: float = 0.8,
        feature_learning_rate: float = 1e-4,
        cosine_t_max: int | None = 20,
        min_learning_rate: float = 1e-8,
        trust_remote_code: bool = False,
        revision: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**self._extract_torch_model_params(**self.model_params))
        self.pl_module_params = self._extract_pl_module_params(**self.model_params)

        likelihood = self.pl_module_params.get("likelihood")
        if likelihood is not None and not isinstance(likelihood, QuantileRegression):
            raise ValueError(
                f"`likelihood` must be None or a darts QuantileRegression, got "
                f"{type(likelihood).__name__}: CALF de-normalises every head output as a value "
                f"on the series' scale, which holds for quantiles only"
            )
        nr_params = 1 if likelihood is None else likelihood.num_parameters
        optimizer_kwargs = copy.deepcopy(self.pl_module_params.get("optimizer_kwargs")) or {}
        optimizer_kwargs.setdefault("lr", REFERENCE_LEARNING_RATE)
        # validate every CALF knob now rather than at fit time (both raise ValueError)
        config = CALFConfig(
            seq_len=input_chunk_length,
            pred_len=nr_params * output_chunk_length,
            backbone=backbone,
            n_layers=n_layers,
            pretrained=pretrained,
            llm_mode=llm_mode,
            n_prototypes=n_prototypes,
            lora_r=lora_r,
            lora_alpha=lora_alpha,
            lora_dropout=lora_dropout,
            lora_target_modules=None if lora_target_modules is None else tuple(lora_target_modules),
            n_heads=n_heads,
            encoder_ff_dim=encoder_ff_dim,
            dropout=dropout,
            loss=loss,
            supervised_weight=supervised_weight,
            output_weight=output_weight,
            feature_weight=feature_weight,
            feature_decay=feature_decay,
            trust_remote_code=trust_remote_code,
            revision=revision,
        )
        TrainingConfig(  # validates the learning rates and the schedule
            learning_rate=optimizer_kwargs["lr"],
            feature_learning_rate=feature_learning_rate,
            cosine_t_max=TrainingConfig.cosine_t_max if cosine_t_max is None else cosine_t_max,
            min_learning_rate=min_learning_rate,
        )

        self._calf_config = {key: value for key, value in config.to_dict().items()
                             if key not in ("seq_len", "pred_len", "backbone")}
        self._backbone = backbone
        self._feature_learning_rate = feature_learning_rate
        self._cosine_t_max = cosine_t_max
        self._min_learning_rate = min_learning_rate
        self.pl_module_params["optimizer_kwargs"] = optimizer_kwargs
        if self.pl_module_params.get("loss_fn") is None:
            self.pl_module_params["loss_fn"] = SUPERVISED_LOSSES[loss]()

    def fit(self, series: Any, *args: Any, **kwargs: Any) -> CALFModel:
        """darts' ``fit``, refusing static covariates instead of silently ignoring them."""
        for name, value in (("series", series), ("val_series", kwargs.get("val_series"))):
            batch = [value] if isinstance(value, TimeSeries) else (value or [])
            if any(ts.static_covariates is not None for ts in batch):
                raise ValueError(
                    f"`{name}` carries static covariates, which CALFModel cannot use; drop them "
                    f"with `series.with_static_covariates(None)` (darts would ignore them silently)"
                )
        return super().fit(series, *args, **kwargs)

    def _create_model(self, train_sample: TorchTrainingSample) -> _CALFModule:
        """Build the network; an int ``random_state`` seeds its initial weights."""
        seed = self.model_params.get("random_state")
        with torch.random.fork_rng(devices=[]):  # the training RNG stays darts' own
            if isinstance(seed, numbers.Integral):
                torch.manual_seed(seed)
            return _CALFModule(
                backbone=self._backbone,
                calf_config=self._calf_config,
                nr_params=1 if self.likelihood is None else self.likelihood.num_parameters,
                feature_learning_rate=self._feature_learning_rate,
                cosine_t_max=self._cosine_t_max,
                min_learning_rate=self._min_learning_rate,
                **self.pl_module_params,
            )

    @property
    def _ckpt_skipped_params(self) -> list[str]:
        """Knobs of training only, which may differ when loading weights into a new model."""
        return super()._ckpt_skipped_params + [
            "loss", "supervised_weight", "output_weight", "feature_weight", "feature_decay",
            "feature_learning_rate", "cosine_t_max", "min_learning_rate",
        ]

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


# darts' safe loading (``load(..., trusted=False)``) accepts allow-listed globals only.
add_safe_globals([CALFModel])
