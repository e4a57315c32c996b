"""CALF's three training losses (``docs/method.md`` §3), as one function returning every part.

Symbols: B batch, H horizon, M variates of the forecast, M_t target variates (the last M_t of M),
D backbone width, S hidden states per branch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from calf_forecaster.config import TrainingConfig
from calf_forecaster.model import CALFOutput

Distance = Callable[[Tensor, Tensor], Tensor]

#: ``TrainingConfig.loss`` -> the torch loss module (mean reduction) of that distance.
DISTANCES: dict[str, type[nn.Module]] = {
    "l1": nn.L1Loss,
    "smooth_l1": nn.SmoothL1Loss,
    "mse": nn.MSELoss,
}


def distance(name: str) -> nn.Module:
    """The distance ``d`` named ``name`` as a loss module (what darts' ``loss_fn`` takes too)."""
    return DISTANCES[name]()


@dataclass
class CALFLossParts:
    """The total loss and its three weighted-before-summing parts (each a scalar tensor)."""

    total: Tensor
    supervised: Tensor
    output: Tensor
    feature: Tensor


def feature_regularisation(time_features: list[Tensor], text_features: list[Tensor],
                           distance: Distance, decay: float) -> Tensor:
    """``sum_k decay**k * d(time_k, text_k)`` with k = 0 the deepest of the S projected states.

    Both lists are ordered embedding output first, deepest last (each (B, M, D)).
    """
    deepest = len(time_features) - 1
    return sum(decay ** (deepest - index) * distance(time_state, text_state)
               for index, (time_state, text_state) in enumerate(zip(time_features, text_features)))


def calf_loss(output: CALFOutput, target: Tensor, config: TrainingConfig,
              supervised: Tensor | None = None) -> CALFLossParts:
    """Total training loss ``w_sup L_sup + w_out L_out + w_feat L_feat`` and its parts.

    Parameters
    ----------
    output
        A forward pass with the textual branch (``with_text_branch=True``).
    target
        True future values (B, H, M_t); compared with the last M_t forecast channels, so that
        covariate tokens placed before the targets are seen by the model but not scored.
    config
        Supplies the distance and the three weights and the feature decay.
    supervised
        A supervised term computed elsewhere (e.g. a likelihood loss) replacing ``d(y_time, y)``.

    Returns
    -------
    CALFLossParts
    """
    if output.text_forecast is None or output.time_features is None or output.text_features is None:
        raise ValueError("calf_loss needs a forward pass with `with_text_branch=True`")
    d = distance(config.loss)
    n_targets = target.shape[-1]
    time_forecast = output.forecast[..., -n_targets:]  # (B, H, M_t)
    text_forecast = output.text_forecast[..., -n_targets:]
    if supervised is None:
        supervised = d(time_forecast, target)
    consistency = d(time_forecast, text_forecast)
    feature = feature_regularisation(output.time_features, output.text_features, d,
                                     config.feature_decay)
    total = (config.supervised_weight * supervised + config.output_weight * consistency
             + config.feature_weight * feature)
    return CALFLossParts(total=total, supervised=supervised, output=consistency, feature=feature)
