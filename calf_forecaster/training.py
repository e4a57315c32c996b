"""Training CALF with PyTorch Lightning: the recipe of ``docs/method.md`` §4, shared by adapters.

The two Adam optimisers of §4 (main parameters at a cosine-annealed 5e-4, feature projections at a
constant 1e-4) are one ``torch.optim.Adam`` with the two parameter groups of
:meth:`CALF.parameter_groups <calf_forecaster.model.CALF.parameter_groups>` and a per-group
``LambdaLR`` (:func:`learning_rate_factors`): Adam updates each parameter from its own moments, so
the updates are identical to two optimisers (a test checks this), and Lightning sees one
optimiser, which keeps automatic optimisation, mixed precision, gradient clipping and DDP working.
:func:`build_optimizer` is the one place that builds it, for this module's Lightning module and
the darts adapter's.

Validation runs in eval mode (Lightning's default; the reference's dropout-on validation is not
reproduced) and scores the temporal branch's MSE averaged over every window (a quantile model:
its pinball loss, :func:`validation_metric`).

Lightning checkpoints (a ``ModelCheckpoint`` callback) follow the checkpoint rule of
:mod:`calf_forecaster.persistence`: what :func:`save_calf <calf_forecaster.persistence.save_calf>`
holds, not the pre-trained backbone's frozen weights, plus the optimiser, schedule,
early-stopping and best-epoch state, so ``train_calf(..., ckpt_path=...)`` resumes a run.

Library calls are quiet: no Lightning banner, tips, model summary or progress bar unless asked
(``verbose=True``, or the user's own ``trainer_kwargs``).
"""

from __future__ import annotations

import logging
import math
import os
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from calf_forecaster.config import TrainingConfig
from calf_forecaster.losses import calf_loss, pinball_loss, smape_loss
from calf_forecaster.model import CALF
from calf_forecaster.persistence import (
    FINGERPRINT_KEY,
    CorruptModelError,
    check_backbone,
    check_complete,
    strip_backbone,
)

logger = logging.getLogger(__name__)

VALIDATION_METRIC = "val_mse"
#: What a quantile model (``CALFConfig.quantiles``) validates on: its pinball loss.
QUANTILE_VALIDATION_METRIC = "val_pinball"
CHECKPOINT_PREFIX = "model."  # CALFLightningModule.model
_LIGHTNING_LOGGERS = ("pytorch_lightning", "lightning.pytorch", "lightning.fabric", "lightning")
#: Lightning warnings about its own internals or about choices CALF makes on purpose, hidden
#: inside library calls only (the user's own code still sees them).
_LIGHTNING_NOISE = (
    r".*isinstance\(treespec, LeafSpec\).*",  # Lightning's use of a torch-internal API
    r".*defined a `validation_step` but have no `val_dataloader`.*",  # training without validation
    r".*does not have many workers which may be a bottleneck.*",  # in-memory windows need none
    r".*Total length of `\w+` across ranks is zero.*",  # darts' empty validation list, no val_series
    r".*'pin_memory' argument is set as true but no accelerator.*",  # darts pins; CPU has nothing to pin
)
#: Trainer defaults (Lightning's ``PL_TRAINER_<ARGUMENT>`` environment variables) inside quiet
#: library calls: no progress bar or model summary unless the call asks for them explicitly, as
#: the darts adapter does for ``verbose=True`` (explicit Trainer arguments win over these).
_QUIET_TRAINER_DEFAULTS = {"PL_TRAINER_ENABLE_PROGRESS_BAR": "False",
                           "PL_TRAINER_ENABLE_MODEL_SUMMARY": "False"}


def validation_metric(model: CALF, training_config: TrainingConfig) -> str:
    """The logged metric that early stopping and the best-epoch restore of ``model`` follow:
    ``val_<TrainingConfig.validation_loss>`` (``val_mse`` by default), ``val_pinball`` for a
    quantile model."""
    if model.config.quantiles is not None:
        return QUANTILE_VALIDATION_METRIC
    return f"val_{training_config.validation_loss}"


#: The scores of ``TrainingConfig.validation_loss``, on (B, H, M) forecasts and targets.
_VALIDATION_SCORES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "mse": F.mse_loss, "mae": F.l1_loss, "smape": smape_loss}


def validation_score(forecast: torch.Tensor, target: torch.Tensor, model: CALF,
                     training_config: TrainingConfig) -> torch.Tensor:
    """The score :func:`validation_metric` names, of (B, H, M) or (B, H, M, Q) forecasts."""
    if model.config.quantiles is not None:
        return pinball_loss(forecast, target, model.config.quantiles)
    return _VALIDATION_SCORES[training_config.validation_loss](forecast, target)


class NonFiniteForecastError(ValueError):
    """The network produced NaN or infinite forecasts (overflow, or non-finite weights)."""


def cosine_factor(epoch: int, base_lr: float, config: TrainingConfig) -> float:
    """Multiplier of ``base_lr`` at ``epoch``: ``CosineAnnealingLR(T_max, eta_min)`` in closed form."""
    if config.cosine_t_max is None:
        return 1.0
    lr = config.min_learning_rate + (base_lr - config.min_learning_rate) * (
        1 + math.cos(math.pi * epoch / config.cosine_t_max)) / 2
    return lr / base_lr


def constant_factor(epoch: int) -> float:
    """Multiplier of a constant learning rate (the feature group's)."""
    return 1.0


def learning_rate_factors(config: TrainingConfig, base_lr: float | None = None
                          ) -> list[Callable[[int], float]]:
    """Per-epoch ``LambdaLR`` factors of the two groups: cosine (main), constant (features).

    Plain functions, which ``LambdaLR`` leaves out of its state (checkpoints stay weights-only).
    """
    rate = config.learning_rate if base_lr is None else base_lr

    def main_factor(epoch: int) -> float:
        return cosine_factor(epoch, rate, config)

    return [main_factor, constant_factor]


def build_optimizer(model: CALF, config: TrainingConfig,
                    optimizer_cls: type[torch.optim.Optimizer] = torch.optim.Adam,
                    optimizer_kwargs: dict[str, Any] | None = None,
                    ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    """The optimiser over :meth:`CALF.parameter_groups` and its per-epoch schedule.

    Parameters
    ----------
    model
        The network.
    config
        Learning rates, schedule and grouping.
    optimizer_cls, optimizer_kwargs
        The optimiser (Adam) and its options; an ``"lr"`` there replaces
        ``config.learning_rate`` for the main group (darts' convention).

    Returns
    -------
    optimizer, scheduler
        The scheduler is meant to step once per epoch.
    """
    kwargs = dict(optimizer_kwargs or {})
    base_lr = kwargs.pop("lr", config.learning_rate)
    main, features = model.parameter_groups(config)
    main["lr"] = base_lr
    kept = [(group, factor) for group, factor in
            zip((main, features), learning_rate_factors(config, base_lr)) if group["params"]]
    groups, factors = [group for group, _ in kept], [factor for _, factor in kept]
    if optimizer_cls is torch.optim.Adam and "fused" not in kwargs:
        # One fused kernel per step where every parameter lives on a device that has it.
        kwargs["fused"] = all(p.device.type in ("cpu", "cuda")
                              for group in groups for p in group["params"])
    try:
        optimizer = optimizer_cls(groups, **kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"could not build optimizer_cls={optimizer_cls} with optimizer_kwargs="
                         f"{optimizer_kwargs}: {error}") from error
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
    return optimizer, scheduler


@contextmanager
def quiet_lightning(verbose: bool = False) -> Iterator[None]:
    """Silence Lightning's informational output unless ``verbose``.

    Inside the block: no device banner or tips (Lightning's loggers at WARNING), no progress bar
    or model summary for a ``Trainer`` built without an explicit ``enable_progress_bar`` /
    ``enable_model_summary`` (through :data:`_QUIET_TRAINER_DEFAULTS`; a variable the user has
    set is kept), and none of the warnings of :data:`_LIGHTNING_NOISE`. Other warnings still
    pass; loggers and environment are restored afterwards.
    """
    if verbose:
        yield
        return
    loggers = [logging.getLogger(name) for name in _LIGHTNING_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(max(lg.getEffectiveLevel(), logging.WARNING))
    added = [name for name in _QUIET_TRAINER_DEFAULTS if not os.environ.get(name)]
    for name in added:
        os.environ[name] = _QUIET_TRAINER_DEFAULTS[name]
    try:
        with warnings.catch_warnings():
            for message in _LIGHTNING_NOISE:
                warnings.filterwarnings("ignore", message=message)
            yield
    finally:
        for name in added:
            os.environ.pop(name, None)
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


class CALFLightningModule(pl.LightningModule):
    """Lightning wrapper of a :class:`CALF` network: losses, logging, optimisers.

    Parameters
    ----------
    model
        The network to train (trained in place).
    training_config
        Learning rates and schedule.
    """

    def __init__(self, model: CALF, training_config: TrainingConfig) -> None:
        super().__init__()
        self.model = model
        self.training_config = training_config
        # Checkpoints leave out the pre-trained backbone; on_load_checkpoint checks the rest.
        self.strict_loading = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Temporal-branch forecast (B, H, M) of lookback windows (B, L, M)."""
        return self.model.predict(x)

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        # (x (B, L, M), y (B, H, M_t)) windows, or the M4 sampler's (x, y, x_mask, y_mask)
        x, y = batch[0], batch[1]
        mask = batch[3] if len(batch) == 4 else None  # (B, H, M_t), 0 on padding
        parts = calf_loss(self.model(x, with_text_branch=True), y, self.training_config,
                          mask=mask, insample=x)
        self.log_dict({"train_loss": parts.total, "train_supervised": parts.supervised,
                       "train_output": parts.output, "train_feature": parts.feature},
                      on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)
        return parts.total

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        x, y = batch[0], batch[1]
        forecast = self.model.predict(x)[:, :, -y.shape[-1]:]  # (B, H, M_t) or (B, H, M_t, Q)
        score = validation_score(forecast, y, self.model, self.training_config)
        # Batch-size-weighted mean over every window, averaged over processes under DDP, so that
        # early stopping and the restored best epoch agree on every rank.
        self.log(validation_metric(self.model, self.training_config), score, on_epoch=True,
                 prog_bar=True, batch_size=x.shape[0], sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the pre-trained backbone's frozen weights: they are rebuilt from ``backbone``."""
        checkpoint["state_dict"] = strip_backbone(checkpoint["state_dict"], self.model,
                                                  CHECKPOINT_PREFIX)
        checkpoint[FINGERPRINT_KEY] = self.model.embedding_fingerprint

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another backbone or one that lacks trained weights."""
        check_backbone(self.model, checkpoint.get(FINGERPRINT_KEY),
                       "build the model on the original backbone")
        check_complete(checkpoint.get("state_dict", {}), self.model, CHECKPOINT_PREFIX)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer, scheduler = build_optimizer(self.model, self.training_config)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


class RestoreBestWeights(Callback):
    """Keep the trainable state of the best validation epoch in memory; load it when fit ends."""

    def __init__(self, monitor: str = VALIDATION_METRIC) -> None:
        self.monitor = monitor
        self.best_score = math.inf
        self.best_epoch: int | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None and float(score) < self.best_score:
            self.best_score, self.best_epoch = float(score), int(trainer.current_epoch)
            self.best_state = {k: v.detach().to("cpu", copy=True)
                               for k, v in pl_module.model.portable_state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        """Saved in Lightning checkpoints, so that a resumed run still restores the best epoch."""
        return {"best_score": self.best_score, "best_epoch": self.best_epoch,
                "best_state": self.best_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score, self.best_state = state_dict["best_score"], state_dict["best_state"]
        self.best_epoch = state_dict.get("best_epoch")  # absent from checkpoints before it

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_state is not None:
            pl_module.model.load_portable_state_dict(self.best_state)
            logger.info("restored weights of the best validation epoch (%s=%.6g)", self.monitor,
                        self.best_score)


def seed_everything(seed: int | None) -> None:
    """Seed Python, NumPy and torch (all devices) if ``seed`` is not ``None``."""
    if seed is not None:
        pl.seed_everything(seed, workers=True, verbose=False)


@dataclass
class TrainingRun:
    """What one :func:`fit_calf` call did.

    Attributes
    ----------
    model
        The trained network (in place), in eval mode.
    epochs
        Epochs run (0 with ``max_epochs=0``).
    device
        Device the training ran on (the root device under DDP).
    seconds
        Wall-clock time of ``Trainer.fit``.
    n_train_windows, n_val_windows
        Windows per epoch.
    best_validation_loss, best_epoch, validation_metric
        The validation score of the epoch restored, that epoch (0-based) and the score's name
        (:func:`validation_metric`); ``None`` without validation.
    """

    model: CALF
    epochs: int
    device: torch.device
    seconds: float
    n_train_windows: int
    n_val_windows: int
    best_validation_loss: float | None = None
    best_epoch: int | None = None
    validation_metric: str | None = None


def check_checkpoint_file(ckpt_path: str | os.PathLike[str] | None) -> None:
    """Refuse a Lightning checkpoint file that is truncated or not a checkpoint, before training.

    torch writes checkpoints as zip archives, whose directory sits at the end of the file: a cut
    or overwritten file lacks it. Lightning's own names (``"last"``, ``"best"``, ...) and missing
    files are left to Lightning.

    Raises
    ------
    calf_forecaster.persistence.CorruptModelError
        If ``ckpt_path`` is a file but not a readable checkpoint archive.
    """
    if ckpt_path is None or not os.path.isfile(ckpt_path):
        return
    if not zipfile.is_zipfile(ckpt_path):
        raise CorruptModelError(
            f"the Lightning checkpoint {os.fspath(ckpt_path)!r} is truncated or not a checkpoint "
            f"(no torch archive); resume from another checkpoint, or train without ckpt_path")


def fit_calf(model: CALF, train_dataset: Dataset, val_dataset: Dataset | None,
             training_config: TrainingConfig,
             trainer_kwargs: dict[str, Any] | None = None,
             ckpt_path: str | None = None, verbose: bool = False) -> TrainingRun:
    """Fit ``model`` in place with Lightning; see :func:`train_calf` for the parameters.

    Returns
    -------
    TrainingRun
        The model (eval mode, best validation epoch restored when validating) and the run's cost.
    """
    n_train = len(train_dataset)
    n_val = 0 if val_dataset is None else len(val_dataset)
    if training_config.max_epochs == 0:
        logger.info("max_epochs=0: the network keeps its current weights")
        return TrainingRun(model.eval(), 0, next(model.parameters()).device, 0.0, n_train, n_val)
    if n_train == 0:
        raise ValueError("the training data hold no window; provide longer series or a shorter "
                         "seq_len / horizon")
    check_checkpoint_file(ckpt_path)
    seed_everything(training_config.seed)
    # Shuffling draws from the seeded global generator: a DataLoader holding its own
    # torch.Generator cannot be sent to ``ddp_spawn`` workers (torch's shared-memory pickling).
    train_loader = DataLoader(train_dataset, batch_size=training_config.batch_size, shuffle=True,
                              drop_last=False)
    val_loader = (DataLoader(val_dataset, batch_size=training_config.batch_size)
                  if val_dataset is not None and n_val > 0 else None)
    options: dict[str, Any] = dict(trainer_kwargs or {})
    callbacks = list(options.pop("callbacks", None) or [])
    if val_loader is not None:
        metric = validation_metric(model, training_config)
        callbacks += [EarlyStopping(metric, patience=training_config.patience, mode="min"),
                      RestoreBestWeights(metric)]
    defaults: dict[str, Any] = {
        "max_epochs": training_config.max_epochs, "logger": False,
        "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
        "enable_model_summary": verbose, "enable_progress_bar": verbose,
        "num_sanity_val_steps": 0, "deterministic": False,
    }
    if val_loader is None:
        defaults["limit_val_batches"] = 0  # nothing to validate: no empty validation loop
    with quiet_lightning(verbose):
        trainer = pl.Trainer(**{**defaults, **options, "callbacks": callbacks})
        module = CALFLightningModule(model.train(), training_config)
        started = time.perf_counter()
        trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path)
        seconds = time.perf_counter() - started
    best = next((c for c in callbacks if isinstance(c, RestoreBestWeights)), None)
    found = best is not None and best.best_state is not None
    return TrainingRun(model.eval(), int(trainer.current_epoch), trainer.strategy.root_device,
                       seconds, n_train, n_val, best.best_score if found else None,
                       best.best_epoch if found else None, best.monitor if found else None)


def train_calf(model: CALF, train_dataset: Dataset, val_dataset: Dataset | None,
               training_config: TrainingConfig,
               trainer_kwargs: dict[str, Any] | None = None,
               ckpt_path: str | None = None, verbose: bool = False) -> CALF:
    """Fit ``model`` in place with Lightning and return it in eval mode.

    Parameters
    ----------
    model
        The network; build it after :func:`seed_everything` for reproducible initial weights.
    train_dataset, val_dataset
        Datasets of ``(x (L, M), y (H, M_t))`` pairs; without validation data there is no early
        stopping and training runs ``max_epochs``.
    training_config
        Losses, recipe and seed (the seed here fixes shuffling and dropout). ``max_epochs=0``
        returns the model unchanged.
    trainer_kwargs
        Extra ``pytorch_lightning.Trainer`` arguments (``accelerator``, ``devices``, ``precision``,
        ``callbacks``, ``enable_progress_bar`` ...); they override the defaults, and ``callbacks``
        are added to CALF's. Checkpointing is on when ``callbacks`` hold a ``ModelCheckpoint``.
    ckpt_path
        A Lightning checkpoint of an earlier run of the same model and data to resume from
        (weights, optimiser, schedule, epoch, early stopping); ``"last"`` as in Lightning.
    verbose
        Show Lightning's progress bar, model summary and messages.

    Returns
    -------
    CALF
        The trained model (best validation epoch restored when validating).
    """
    return fit_calf(model, train_dataset, val_dataset, training_config, trainer_kwargs,
                    ckpt_path, verbose).model


def check_windows(x: np.ndarray | torch.Tensor) -> np.ndarray:
    """Validate lookback windows (N, L, M): numeric, rank 3, non-empty steps and variates, finite.

    Raises
    ------
    TypeError
        If ``x`` is not numeric.
    ValueError
        If ``x`` has another rank, no time steps or variates, or NaN or infinite values.
    """
    array = np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach().cpu().numpy()
    if array.dtype.kind not in "iuf":
        raise TypeError(f"`x` must be numeric, got dtype {array.dtype}")
    if array.ndim != 3:
        raise ValueError(f"`x` must have shape (windows, seq_len, n_variates), got {array.shape}")
    if array.shape[1] == 0 or array.shape[2] == 0:
        raise ValueError(f"`x` has no time steps or no variates (shape {array.shape}); give "
                         f"windows of shape (windows, seq_len, n_variates)")
    if not np.isfinite(array).all():
        raise ValueError("`x` holds NaN or infinite values; impute them before predicting")
    return array


def autocast_dtype(precision: object) -> torch.dtype | None:
    """The autocast dtype of a Lightning ``precision`` setting; ``None`` for full precision.

    ``"bf16-mixed"`` and ``"16-mixed"`` run the network's matrix products in bfloat16 / float16
    with float32 weights, as Lightning's mixed precision does in training; ``"bf16-true"`` /
    ``"16-true"`` too (the weights stay float32 here). Anything else (``32``, ``"32-true"``,
    ``"64-true"``, ``None``) is full precision.
    """
    name = str(precision).lower() if precision is not None else ""
    if name.startswith("bf16"):
        return torch.bfloat16
    if name.startswith("16"):
        return torch.float16
    return None


@torch.inference_mode()
def predict_windows(model: CALF, x: np.ndarray | torch.Tensor, batch_size: int = 256,
                    device: torch.device | str | None = None,
                    precision: object = None) -> np.ndarray:
    """Temporal-branch forecasts (N, H, M) of lookback windows (N, L, M), in eval mode.

    A quantile model returns (N, H, M, Q), the levels of ``model.config.quantiles`` last.

    The statistics of every window are taken in float64 and the forecasts returned in float64,
    so values near float32's range do not overflow. A non-finite forecast raises.

    Parameters
    ----------
    model
        A (trained) network; its train/eval mode and its device are restored afterwards.
    x
        Lookback windows, numeric, without NaNs.
    batch_size
        Windows per forward pass; the last partial batch is kept.
    device
        Where to run; default: where the model's parameters are.
    precision
        A Lightning precision setting (e.g. ``"bf16-mixed"``) to forecast under autocast
        (:func:`autocast_dtype`); default: full precision. The window statistics and the
        de-normalisation stay float64 either way.

    Raises
    ------
    NonFiniteForecastError
        If a forecast is NaN or infinite.
    """
    array = check_windows(x)
    home = next(model.parameters()).device
    device = torch.device(device) if device is not None else home
    was_training = model.training
    model.eval()
    try:
        if device != home:
            model.to(device)
        dtype = autocast_dtype(precision)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            outputs = [model.predict(torch.tensor(array[start:start + batch_size],
                                                     dtype=torch.float64, device=device)).cpu()
                       for start in range(0, len(array), batch_size)]
    finally:
        if device != home:
            model.to(home)
        model.train(was_training)
    forecast = torch.cat(outputs).double().numpy() if outputs else np.zeros(
        (0, model.config.pred_len, array.shape[2], *([model.n_quantiles] if model.n_quantiles
                                                       else [])))
    if not np.isfinite(forecast).all():
        raise NonFiniteForecastError(
            f"the network produced {int((~np.isfinite(forecast)).sum())} NaN or infinite "
            f"forecast values; its inputs are finite, so the weights are non-finite or the "
            f"values overflow the network's precision: rescale the data (scale=True, or a "
            f"scaler) or check the training loss")
    return forecast
