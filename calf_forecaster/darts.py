"""CALF as a darts ``TorchForecastingModel``: :class:`CALFModel`.

Symbols
-------
B  batch size                         L  ``input_chunk_length`` (CALF's ``seq_len``)
H  ``output_chunk_length``            Q  likelihood parameters per value (1 without likelihood)
C  target components                  C_p  past-covariate components
M  variate tokens, ``C_p + C``        D  backbone width

Data flow of one batch: darts' ``past_covariates`` (B, L, C_p) and ``past_target`` (B, L, C) are
joined into (B, L, M) with the covariates *first*: the backbone is causal over variate tokens, so
only tokens placed before the targets can inform them. The core network forecasts every token; the
last C tokens are the targets. Its head is built with ``pred_len = H * Q``, so each target token
yields H values per likelihood parameter, reshaped to darts' (B, H, C, Q).

Training goes through darts' own loop. The only hook overridden is
``PLForecastingModule._compute_loss``: darts' loss (``loss_fn``, or the likelihood's loss, with
sample weights) becomes CALF's supervised term, and the output-consistency and
feature-regularisation terms of ``calf-method.md`` §3 are added to it. The textual branch runs in
training steps only; validation and prediction use the temporal branch alone.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

try:
    from darts.models.forecasting.pl_forecasting_module import (
        PLForecastingModule,
        io_processor,
    )
    from darts.models.forecasting.torch_forecasting_model import PastCovariatesTorchModel
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
        "calf_forecaster.darts needs darts; install it with: pip install \"calf-forecaster[darts]\""
    ) from error

from calf_forecaster.config import CALFConfig
from calf_forecaster.losses import calf_loss
from calf_forecaster.model import CALF, CALFOutput

logger = logging.getLogger(__name__)

__all__ = ["CALFModel"]

#: CALF's reference learning rate of the main parameter group (``calf-method.md`` §4); used
#: unless ``optimizer_kwargs`` sets ``"lr"``.
REFERENCE_LEARNING_RATE = 5e-4

#: ``CALFConfig.loss`` -> the torch loss darts uses for the supervised term.
_SUPERVISED_LOSSES: dict[str, type[nn.Module]] = {
    "l1": nn.L1Loss,
    "smooth_l1": nn.SmoothL1Loss,
    "mse": nn.MSELoss,
}

#: Lightning scheduler-config keys that darts lets users pass inside ``lr_scheduler_kwargs``.
_LIGHTNING_SCHEDULER_KEYS = ("monitor", "interval", "frequency", "strict", "name")


@dataclass(slots=True)
class _CALFModuleOutput(PLModuleOutput):
    """darts' module output plus the core network's full output (training steps only)."""

    calf: CALFOutput | None = None


def cosine_factor(epoch: int, t_max: int, learning_rate: float, min_learning_rate: float) -> float:
    """Multiplier of ``learning_rate`` after ``epoch`` epochs of cosine annealing.

    The closed form of ``torch.optim.lr_scheduler.CosineAnnealingLR`` (period ``2 * t_max``, as in
    the reference, which keeps stepping past ``t_max``), as a ``LambdaLR`` factor.
    """
    cosine = (1.0 + math.cos(math.pi * epoch / t_max)) / 2.0
    return (min_learning_rate + (learning_rate - min_learning_rate) * cosine) / learning_rate


class _CALFModule(PLForecastingModule):
    """darts Lightning module around the core :class:`~calf_forecaster.model.CALF` network.

    Parameters
    ----------
    backbone
        Hugging Face name or local directory of the backbone (kept apart from ``calf_config`` so
        that ``CALFModel.load(path, backbone=new_location)`` can relocate it).
    calf_config
        ``CALFConfig.to_dict()`` without ``seq_len``, ``pred_len`` and ``backbone``, which follow
        from the chunk lengths, the likelihood and ``backbone``.
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
        config = CALFConfig.from_dict({
            **calf_config,
            "backbone": backbone,
            "seq_len": self.input_chunk_length,
            "pred_len": self.output_chunk_length * nr_params,
        })
        self.calf = CALF(config)

    @io_processor
    def forward(self, x_in: PLModuleInput) -> PLModuleOutput:
        """darts input -> prediction (B, H, C, Q); in training steps also the core's output."""
        tokens = [t for t in (x_in.past_covariates, x_in.past_target) if t is not None]
        x = torch.cat(tokens, dim=2)  # (B, L, M), covariates first, targets last
        with_text_branch = x_in.stage == ModuleStage.TRAIN
        output = self.calf(x, with_text_branch=with_text_branch)
        batch = x.shape[0]
        forecast = output.forecast[:, :, -self.n_targets:]  # (B, Q * H, C)
        prediction = forecast.reshape(
            batch, self.nr_params, self.output_chunk_length, self.n_targets
        ).permute(0, 2, 3, 1)  # (B, H, C, Q)
        return _CALFModuleOutput(prediction=prediction,
                                 calf=output if with_text_branch else None)

    def _compute_loss(
        self,
        output: PLModuleOutput,
        target: torch.Tensor,
        criterion: nn.Module,
        sample_weight: torch.Tensor | None,
    ) -> torch.Tensor:
        """darts' loss as CALF's supervised term, plus the distillation terms when trained."""
        supervised = super()._compute_loss(output, target, criterion, sample_weight)
        calf_output = getattr(output, "calf", None)
        if calf_output is None or calf_output.text_forecast is None:
            return supervised  # validation: the forecasting loss alone
        parts = calf_loss(calf_output, target, self.calf.config, supervised=supervised)
        batch_size = target.shape[0]
        self.log("train_loss_output", parts.output, batch_size=batch_size, sync_dist=True)
        self.log("train_loss_feature", parts.feature, batch_size=batch_size, sync_dist=True)
        return parts.total

    def configure_optimizers(self) -> Any:
        """``optimizer_cls`` over two parameter groups, with CALF's schedule by default.

        The feature projections form their own group at the constant ``feature_learning_rate``;
        every other trainable parameter uses ``optimizer_kwargs`` (CALF's ``lr`` by default). With
        ``lr_scheduler_cls=None`` the main group follows CALF's per-epoch cosine annealing; a
        user-given ``lr_scheduler_cls`` is built as darts builds it.
        """
        feature_ids = {id(p) for p in self.calf.feature_projection_parameters()}
        main = [p for p in self.parameters() if p.requires_grad and id(p) not in feature_ids]
        features = [p for p in self.calf.feature_projection_parameters() if p.requires_grad]
        groups: list[dict[str, Any]] = []
        lambdas = []
        lr = self.optimizer_kwargs.get("lr", REFERENCE_LEARNING_RATE)
        if main:
            groups.append({"params": main})
            if self.cosine_t_max is None:
                lambdas.append(_constant)
            else:
                lambdas.append(_CosineSchedule(self.cosine_t_max, lr, self.min_learning_rate))
        if features:
            groups.append({"params": features, "lr": self.feature_learning_rate})
            lambdas.append(_constant)
        try:
            optimizer = self.optimizer_cls(groups, **self.optimizer_kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"could not build the optimizer {self.optimizer_cls} with optimizer_kwargs "
                f"{self.optimizer_kwargs}: {error}"
            ) from error
        if self.lr_scheduler_cls is not None:
            return self._user_scheduler(optimizer)
        if self.cosine_t_max is None:
            return optimizer
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambdas)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch", "frequency": 1}}

    def _user_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """``lr_scheduler_cls(**lr_scheduler_kwargs)`` configured for Lightning as darts does."""
        kwargs = dict(self.lr_scheduler_kwargs)
        lightning_config = {"monitor": "val_loss", "interval": "epoch", "frequency": 1,
                            "strict": True, "name": None}
        for key in _LIGHTNING_SCHEDULER_KEYS:
            if key in kwargs:
                lightning_config[key] = kwargs.pop(key)
        try:
            scheduler = self.lr_scheduler_cls(optimizer=optimizer, **kwargs)
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"could not build the learning-rate scheduler {self.lr_scheduler_cls} with "
                f"lr_scheduler_kwargs {self.lr_scheduler_kwargs}: {error}"
            ) from error
        return [optimizer], {"scheduler": scheduler, **lightning_config}

    # ------------------------------------------------------------------ checkpoints

    def _backbone_state_keys(self) -> set[str]:
        """This module's state-dict keys that are rebuilt from the pre-trained backbone."""
        return {f"calf.{key}" for key in self.calf.backbone_state_keys}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """darts' checkpoint content, without the frozen pre-trained backbone weights."""
        super().on_save_checkpoint(checkpoint)
        frozen = self._backbone_state_keys()
        checkpoint["state_dict"] = {key: value for key, value in checkpoint["state_dict"].items()
                                    if key not in frozen}

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """Load a state dict; the frozen backbone weights may be absent (they are rebuilt)."""
        missing = self._backbone_state_keys() - set(state_dict)
        if missing:
            own = self.state_dict()
            state_dict = {**state_dict, **{key: own[key] for key in missing}}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _constant(epoch: int) -> float:
    return 1.0


@dataclass(frozen=True)
class _CosineSchedule:
    """Picklable ``LambdaLR`` factor of :func:`cosine_factor`."""

    t_max: int
    learning_rate: float
    min_learning_rate: float

    def __call__(self, epoch: int) -> float:
        return cosine_factor(epoch, self.t_max, self.learning_rate, self.min_learning_rate)


class CALFModel(PastCovariatesTorchModel):
    """CALF (Liu et al., AAAI 2025): a language model aligned to time series by cross-modal
    distillation, as a darts global forecasting model.

    Every component of the target and of the past covariates is one token (its last
    ``input_chunk_length`` values); covariate tokens come first so that the causal backbone lets
    the target tokens attend to them, and only target tokens are forecast. Future and static
    covariates are not supported (darts refuses future covariates and ignores static ones).

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
        Checkpoints store everything except its frozen pre-trained weights, which are read again
        from here on loading: pass ``backbone=new_location`` to ``load`` if it has moved.
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
        LoRA on the temporal branch (8, 32, 0.1, the backbone family's default).
    n_heads, encoder_ff_dim, dropout
        Cross-modal match module: attention heads (12), feed-forward width (2048), dropout (0.1).
    loss
        Distance of CALF's loss terms: ``"l1"`` (reference for ETT), ``"smooth_l1"`` or ``"mse"``.
        Without ``loss_fn`` and ``likelihood`` it is also the supervised loss (``nn.L1Loss`` etc.).
    supervised_weight, output_weight, feature_weight, feature_decay
        Loss weights (1.0, 1.0, 0.01) and the per-layer decay of the feature term (0.8).
    feature_learning_rate
        Constant learning rate of the feature projections (1e-4).
    cosine_t_max, min_learning_rate
        With ``lr_scheduler_cls=None``, the main group's learning rate is cosine-annealed per epoch
        with period ``cosine_t_max`` epochs (20) down to ``min_learning_rate`` (1e-8), as in the
        reference. ``cosine_t_max=None`` keeps it constant.
    trust_remote_code, revision
        Passed to transformers when loading ``backbone``.
    **kwargs
        darts' standard torch-model parameters: ``batch_size``, ``n_epochs``, ``model_name``,
        ``work_dir``, ``log_tensorboard``, ``nr_epochs_val_period``, ``force_reset``,
        ``save_checkpoints``, ``add_encoders`` (past encoders only), ``random_state``,
        ``pl_trainer_kwargs``, ``show_warnings``, ``enable_finetuning``, ``loss_fn``,
        ``likelihood``, ``torch_metrics``, ``optimizer_cls``, ``optimizer_kwargs``,
        ``lr_scheduler_cls``, ``lr_scheduler_kwargs``, ``use_reversible_instance_norm``.

    Notes
    -----
    *Optimisation.* ``optimizer_cls`` (Adam) gets two parameter groups: the feature projections at
    ``feature_learning_rate``, everything else with ``optimizer_kwargs``, whose ``"lr"`` defaults
    to CALF's 5e-4 rather than the optimizer's own default. A user ``lr_scheduler_cls`` replaces the
    cosine schedule and applies to both groups.

    *Loss.* darts' loss (``loss_fn``, or the likelihood's loss, with any ``sample_weight``) is the
    supervised term; the output-consistency term (``d`` between the two branches' forecasts) and
    the feature term are added in training steps. ``val_loss`` is the supervised loss alone,
    computed without the textual branch.

    *Likelihoods.* Only :class:`~darts.utils.likelihood_models.torch.QuantileRegression` is
    accepted: its parameters are values on the series' scale, which CALF's de-normalisation
    preserves. The head gives Q = ``len(quantiles)`` values per step and token, so the
    output-consistency term aligns every quantile of the two branches and the feature term is
    unchanged.

    *Checkpoints.* ``save``, ``load``, ``load_from_checkpoint`` and ``load_weights*`` work as for
    every darts model; loading needs no ``trusted=True`` (the class is registered with
    ``darts.utils.serialization.add_safe_globals`` on import). Files hold everything but the frozen
    pre-trained backbone weights.

    Examples
    --------
    >>> from darts.datasets import ETTh1Dataset  # doctest: +SKIP
    >>> from calf_forecaster.darts import CALFModel
    >>> series = ETTh1Dataset().load().astype("float32")  # doctest: +SKIP
    >>> model = CALFModel(input_chunk_length=96, output_chunk_length=96, batch_size=256,
    ...                   n_epochs=10)  # doctest: +SKIP
    >>> model.fit(series[:8640])  # doctest: +SKIP
    >>> forecast = model.predict(96)  # doctest: +SKIP
    """

    def __init__(
        self,
        input_chunk_length: int,
        output_chunk_length: int,
        output_chunk_shift: int = 0,
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
                f"{type(likelihood).__name__}: CALF de-normalises its head's outputs as values on "
                f"the series' scale, which holds for quantiles but not for e.g. a scale parameter"
            )
        if feature_learning_rate <= 0:
            raise ValueError(f"`feature_learning_rate` must be > 0, got {feature_learning_rate}")
        if cosine_t_max is not None and (not isinstance(cosine_t_max, int) or cosine_t_max < 1):
            raise ValueError(f"`cosine_t_max` must be None or an int >= 1, got {cosine_t_max!r}")
        if min_learning_rate < 0:
            raise ValueError(f"`min_learning_rate` must be >= 0, got {min_learning_rate}")
        nr_params = 1 if likelihood is None else likelihood.num_parameters
        config = CALFConfig(  # validates every knob now rather than at fit time
            seq_len=input_chunk_length,
            pred_len=output_chunk_length * nr_params,
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
        calf_config = config.to_dict()
        for derived in ("seq_len", "pred_len", "backbone"):
            del calf_config[derived]
        self._calf_config = calf_config
        self._backbone = backbone
        self._feature_learning_rate = feature_learning_rate
        self._cosine_t_max = cosine_t_max
        self._min_learning_rate = min_learning_rate

        if self.pl_module_params.get("loss_fn") is None:
            self.pl_module_params["loss_fn"] = _SUPERVISED_LOSSES[loss]()
        optimizer_kwargs = copy.deepcopy(self.pl_module_params.get("optimizer_kwargs")) or {}
        optimizer_kwargs.setdefault("lr", REFERENCE_LEARNING_RATE)
        self.pl_module_params["optimizer_kwargs"] = optimizer_kwargs

    def _create_model(self, train_sample: TorchTrainingSample) -> _CALFModule:
        nr_params = 1 if self.likelihood is None else self.likelihood.num_parameters
        return _CALFModule(
            backbone=self._backbone,
            calf_config=self._calf_config,
            nr_params=nr_params,
            feature_learning_rate=self._feature_learning_rate,
            cosine_t_max=self._cosine_t_max,
            min_learning_rate=self._min_learning_rate,
            **self.pl_module_params,
        )

    @property
    def _ckpt_skipped_params(self) -> list[str]:
        """Training-only knobs, which may differ when loading weights into a new model."""
        return super()._ckpt_skipped_params + [
            "loss", "supervised_weight", "output_weight", "feature_weight", "feature_decay",
            "feature_learning_rate", "cosine_t_max", "min_learning_rate",
        ]


# darts' safe loading (``load(..., trusted=False)``) accepts only allow-listed globals.
add_safe_globals([CALFModel])
