"""Training CALF with PyTorch Lightning: the recipe of ``calf-method.md`` §4, shared by adapters.

The two Adam optimisers of §4 (main parameters at a cosine-annealed 5e-4, feature projections at a
constant 1e-4) are one ``torch.optim.Adam`` with two parameter groups and a per-group
``LambdaLR``: Adam updates each parameter from its own moments, so the updates are identical to two
optimisers (a test checks this), and Lightning sees one optimiser, which keeps automatic
optimisation, mixed precision, gradient clipping and DDP working unchanged.

Validation runs in eval mode (Lightning's default; the reference's dropout-on validation is not
reproduced) and scores the temporal branch's MSE averaged over every window.

Lightning checkpoints (a ``ModelCheckpoint`` callback) hold what :func:`save_calf
<calf_forecaster.persistence.save_calf>` holds, not the pre-trained backbone's frozen weights, plus
the optimiser, schedule, early-stopping and best-epoch state, so ``train_calf(..., ckpt_path=...)``
resumes a run where it stopped.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from torch.utils.data import DataLoader, Dataset

from calf_forecaster.config import TrainingConfig
from calf_forecaster.losses import calf_loss
from calf_forecaster.model import CALF
from calf_forecaster.persistence import BackboneMismatchError, has_other_backbone

logger = logging.getLogger(__name__)

VALIDATION_METRIC = "val_mse"
CHECKPOINT_PREFIX = "model."  # CALFLightningModule.model
FINGERPRINT_KEY = "calf_embedding_fingerprint"


def cosine_factor(epoch: int, base_lr: float, config: TrainingConfig) -> float:
    """Multiplier of ``base_lr`` at ``epoch``: ``CosineAnnealingLR(T_max, eta_min)`` in closed form."""
    lr = config.min_learning_rate + (base_lr - config.min_learning_rate) * (
        1 + math.cos(math.pi * epoch / config.cosine_t_max)) / 2
    return lr / base_lr


def build_optimizer(model: CALF, config: TrainingConfig
                    ) -> tuple[torch.optim.Adam, torch.optim.lr_scheduler.LambdaLR]:
    """Adam with the main group (cosine per epoch) and the feature-projection group (constant).

    Returns
    -------
    optimizer, scheduler
        The scheduler is meant to step once per epoch.
    """
    groups = [
        {"params": list(model.main_parameters()), "lr": config.learning_rate},
        {"params": list(model.feature_projection_parameters()), "lr": config.feature_learning_rate},
    ]
    # One fused kernel per step where every parameter lives on a device that has it (CPU, CUDA).
    fused = all(p.device.type in ("cpu", "cuda") for group in groups for p in group["params"])
    optimizer = torch.optim.Adam(groups, fused=fused)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, [
        lambda epoch: cosine_factor(epoch, config.learning_rate, config),
        lambda epoch: 1.0,
    ])
    return optimizer, scheduler


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

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch  # (B, L, M), (B, H, M)
        parts = calf_loss(self.model(x, with_text_branch=True), y, self.model.config)
        self.log_dict({"train_loss": parts.total, "train_supervised": parts.supervised,
                       "train_output": parts.output, "train_feature": parts.feature},
                      on_step=False, on_epoch=True, batch_size=x.shape[0], sync_dist=True)
        return parts.total

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        forecast = self.model.predict(x)[..., -y.shape[-1]:]
        # Batch-size-weighted mean over every window, averaged over processes under DDP, so that
        # early stopping and the restored best epoch agree on every rank.
        self.log(VALIDATION_METRIC, F.mse_loss(forecast, y), on_epoch=True, prog_bar=True,
                 batch_size=x.shape[0], sync_dist=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Drop the pre-trained backbone's frozen weights: they are rebuilt from ``backbone``."""
        dropped = {f"{CHECKPOINT_PREFIX}{key}" for key in self.model.backbone_state_keys}
        checkpoint["state_dict"] = {key: value for key, value in checkpoint["state_dict"].items()
                                    if key not in dropped}
        checkpoint[FINGERPRINT_KEY] = self.model.embedding_fingerprint

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Refuse a checkpoint of another backbone or one that lacks trained weights."""
        model = self.model
        if has_other_backbone(model, checkpoint.get(FINGERPRINT_KEY)):
            raise BackboneMismatchError(
                f"this checkpoint was trained on a backbone with other word embeddings than "
                f"{model.config.backbone!r}; build the model on the original backbone")
        expected = {f"{CHECKPOINT_PREFIX}{key}" for key in model.portable_state_dict()}
        missing = sorted(expected - checkpoint["state_dict"].keys())
        if missing:
            raise KeyError(f"checkpoint does not fit this CALF configuration: missing {missing[:5]}")

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer, scheduler = build_optimizer(self.model, self.training_config)
        return {"optimizer": optimizer,
                "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}


class RestoreBestWeights(Callback):
    """Keep the trainable state of the best validation epoch in memory; load it when fit ends."""

    def __init__(self, monitor: str = VALIDATION_METRIC) -> None:
        self.monitor = monitor
        self.best_score = math.inf
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None and float(score) < self.best_score:
            self.best_score = float(score)
            self.best_state = {k: v.detach().to("cpu", copy=True)
                               for k, v in pl_module.model.portable_state_dict().items()}

    def state_dict(self) -> dict[str, Any]:
        """Saved in Lightning checkpoints, so that a resumed run still restores the best epoch."""
        return {"best_score": self.best_score, "best_state": self.best_state}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best_score, self.best_state = state_dict["best_score"], state_dict["best_state"]

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.best_state is not None:
            pl_module.model.load_portable_state_dict(self.best_state)
            logger.info("restored weights of the best validation epoch (%s=%.6g)", self.monitor,
                        self.best_score)


def seed_everything(seed: int | None) -> None:
    """Seed Python, NumPy and torch (all devices) if ``seed`` is not ``None``."""
    if seed is not None:
        pl.seed_everything(seed, workers=True, verbose=False)


def train_calf(model: CALF, train_dataset: Dataset, val_dataset: Dataset | None,
               training_config: TrainingConfig,
               trainer_kwargs: dict[str, Any] | None = None,
               ckpt_path: str | None = None) -> CALF:
    """Fit ``model`` in place with Lightning and return it in eval mode.

    Parameters
    ----------
    model
        The network; build it after :func:`seed_everything` for reproducible initial weights.
    train_dataset, val_dataset
        Datasets of ``(x (L, M), y (H, M_t))`` pairs; without validation data there is no early
        stopping and training runs ``max_epochs``.
    training_config
        Recipe and seed (the seed here fixes shuffling and dropout).
    trainer_kwargs
        Extra ``pytorch_lightning.Trainer`` arguments (``accelerator``, ``devices``, ``precision``,
        ``callbacks`` ...); they override the defaults, and ``callbacks`` are added to CALF's.
        Checkpointing is on when ``callbacks`` hold a ``ModelCheckpoint``.
    ckpt_path
        A Lightning checkpoint of an earlier run of the same model and data to resume from
        (weights, optimiser, schedule, epoch, early stopping); ``"last"`` as in Lightning.

    Returns
    -------
    CALF
        The trained model (best validation epoch restored when validating).
    """
    seed_everything(training_config.seed)
    # Shuffling draws from the seeded global generator: a DataLoader holding its own
    # torch.Generator cannot be sent to ``ddp_spawn`` workers (torch's shared-memory pickling).
    train_loader = DataLoader(train_dataset, batch_size=training_config.batch_size, shuffle=True,
                              drop_last=False)
    val_loader = (DataLoader(val_dataset, batch_size=training_config.batch_size)
                  if val_dataset is not None and len(val_dataset) > 0 else None)
    options: dict[str, Any] = dict(trainer_kwargs or {})
    callbacks = list(options.pop("callbacks", None) or [])
    if val_loader is not None:
        callbacks += [EarlyStopping(VALIDATION_METRIC, patience=training_config.patience,
                                    mode="min"), RestoreBestWeights()]
    defaults: dict[str, Any] = {
        "max_epochs": training_config.max_epochs, "logger": False,
        "enable_checkpointing": any(isinstance(c, ModelCheckpoint) for c in callbacks),
        "enable_model_summary": False, "num_sanity_val_steps": 0, "deterministic": False,
    }
    if val_loader is None:
        defaults["limit_val_batches"] = 0  # nothing to validate: no empty validation loop
    trainer = pl.Trainer(**{**defaults, **options, "callbacks": callbacks})
    module = CALFLightningModule(model.train(), training_config)
    trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path)
    return model.eval()


@torch.inference_mode()
def predict_windows(model: CALF, x: np.ndarray | torch.Tensor, batch_size: int = 256,
                    device: torch.device | str | None = None) -> np.ndarray:
    """Temporal-branch forecasts (N, H, M) of lookback windows (N, L, M), in eval mode.

    Parameters
    ----------
    model
        A (trained) network; its train/eval mode is restored afterwards.
    x
        Lookback windows, numeric, without NaNs.
    batch_size
        Windows per forward pass; the last partial batch is kept.
    device
        Where to run; default: where the model's parameters are.
    """
    array = np.asarray(x) if not isinstance(x, torch.Tensor) else x.detach().cpu().numpy()
    if array.dtype.kind not in "iuf":
        raise TypeError(f"`x` must be numeric, got dtype {array.dtype}")
    if array.ndim != 3:
        raise ValueError(f"`x` must have shape (windows, seq_len, n_variates), got {array.shape}")
    if not np.isfinite(array).all():
        raise ValueError("`x` holds NaN or infinite values; impute them before predicting")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        outputs = [model.predict(torch.tensor(array[start:start + batch_size],
                                                 dtype=torch.float32, device=device)).cpu()
                   for start in range(0, len(array), batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(outputs).numpy() if outputs else np.zeros((0, model.config.pred_len,
                                                                array.shape[2]), np.float32)

