"""CALF's three training losses (``docs/method.md`` §3), as one function returning every part.

Symbols: B batch, L lookback, H horizon, M variates of the forecast, M_t target variates (the last
M_t of M), D backbone width, S hidden states per branch, m seasonality.

Each term has its own distance (``TrainingConfig.term_losses``; all ``loss`` by default). Besides
L1, SmoothL1 and MSE, the supervised and output terms can use the M4 losses of §9, as the
Time-Series-Library computes them: masked sMAPE :func:`smape_loss` and masked MASE
:func:`mase_loss` (scaled by each lookback's seasonal-naive MAE). A mask (B, H, M_t), 1 on real
target values and 0 on padding, weights every distance when given.

A quantile model (``CALFConfig.quantiles``, Q levels) forecasts (B, H, M, Q): its supervised term
is :func:`pinball_loss` (``supervised_loss`` is not used), and its output-consistency term is the
distance between the two branches' forecasts of every quantile (``docs/method.md``, Quantile
forecasts). The darts adapter's ``QuantileRegression`` trains with the same function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
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


#: Distances that need the target mask or the lookback (M4, docs/method.md §9).
MASKED_DISTANCES = ("smape", "mase")


def _divide_no_nan(numerator: Tensor, denominator: Tensor) -> Tensor:
    """``numerator / denominator`` with 0 wherever the quotient is NaN or infinite."""
    result = numerator / denominator
    return torch.where(torch.isfinite(result), result, torch.zeros_like(result))


def smape_loss(forecast: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
    """Masked sMAPE in percent: ``200 mean(mask |f - y| / (|f| + |y|))``, 0/0 counted as 0.

    The denominator is detached, as in the Time-Series-Library loss the reference trains with.
    """
    mask = torch.ones_like(target) if mask is None else mask
    ratio = _divide_no_nan((forecast - target).abs(), forecast.detach().abs() + target.abs())
    return 200.0 * torch.mean(ratio * mask)


def mase_loss(forecast: Tensor, target: Tensor, insample: Tensor, seasonality: int,
              mask: Tensor | None = None) -> Tensor:
    """Masked MASE: ``mean(mask |f - y| / scale)``, scale the lookback's seasonal-naive MAE.

    Parameters
    ----------
    forecast, target
        (B, H, M_t).
    insample
        Lookback windows (B, L, M_t); ``scale = mean_t |x_t - x_{t-m}|`` per window and variate
        (a zero scale gives weight 0, as ``divide_no_nan`` does in the reference).
    seasonality
        Lag m (< L).
    mask
        (B, H, M_t), or ``None`` for all ones.
    """
    if not 1 <= seasonality < insample.shape[1]:
        raise ValueError(f"`mase_seasonality`={seasonality} must lie in [1, seq_len="
                         f"{insample.shape[1]})")
    mask = torch.ones_like(target) if mask is None else mask
    scale = (insample[:, seasonality:] - insample[:, :-seasonality]).abs().mean(1, keepdim=True)
    return torch.mean((forecast - target).abs() * _divide_no_nan(mask, scale))  # scale (B, 1, M_t)


def term_distance(name: str, forecast: Tensor, target: Tensor, mask: Tensor | None = None,
                  insample: Tensor | None = None, seasonality: int = 1) -> Tensor:
    """Distance ``name`` between two (B, H, M_t) tensors, weighted by ``mask`` when given.

    Without a mask, L1/SmoothL1/MSE are exactly their torch modules' means.

    Raises
    ------
    ValueError
        For ``"mase"`` without ``insample``.
    """
    if name == "smape":
        return smape_loss(forecast, target, mask)
    if name == "mase":
        if insample is None:
            raise ValueError("the `\"mase\"` loss needs the lookback windows (`insample`)")
        return mase_loss(forecast, target, insample, seasonality, mask)
    if mask is None:
        return distance(name)(forecast, target)
    elementwise = DISTANCES[name](reduction="none")(forecast, target)
    return torch.mean(elementwise * mask)


def pinball_loss(forecast: Tensor, target: Tensor, quantiles: tuple[float, ...] | Tensor,
                 weight: Tensor | None = None) -> Tensor:
    """Pinball (quantile) loss, summed over the Q levels and averaged over everything else.

    ``max(q (y - f_q), (q - 1) (y - f_q))`` for every level q; darts' ``QuantileRegression``
    loss, term for term.

    Parameters
    ----------
    forecast
        Quantile forecasts (B, H, M_t, Q).
    target
        True values (B, H, M_t).
    quantiles
        The Q levels, in the order of ``forecast``'s last axis.
    weight
        (B, H, M_t) weights (a mask, or darts' sample weights) of every summed loss, or ``None``.
    """
    levels = torch.as_tensor(quantiles, dtype=forecast.dtype, device=forecast.device)  # (Q,)
    errors = target.unsqueeze(-1) - forecast  # (B, H, M_t, Q)
    losses = torch.max((levels - 1) * errors, levels * errors).sum(dim=-1)  # (B, H, M_t)
    if weight is not None:
        losses = losses * weight
    return losses.mean()


def _flatten_quantiles(values: Tensor | None, n_quantiles: int, repeat: bool) -> Tensor | None:
    """(B, H, M_t, Q) -> (B, H, M_t * Q), or a (B, ., M_t) mask/lookback repeated to match."""
    if values is None:
        return None
    return values.repeat_interleave(n_quantiles, dim=-1) if repeat else values.flatten(2)


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
              supervised: Tensor | None = None, mask: Tensor | None = None,
              insample: Tensor | None = None) -> CALFLossParts:
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
        A supervised term computed elsewhere replacing ``d(y_time, y)`` (or the pinball loss of
        a quantile model).
    mask
        (B, H, M_t): 1 on real target values, 0 on padding (the M4 sampler's ``y_mask``); weights
        the supervised and output terms. ``None``: every value counts.
    insample
        The lookback windows (B, L, M) the forecasts came from; needed by the ``"mase"`` distance
        (its last M_t channels give the scale).

    Returns
    -------
    CALFLossParts
    """
    if output.text_forecast is None or output.time_features is None or output.text_features is None:
        raise ValueError("calf_loss needs a forward pass with `with_text_branch=True`")
    supervised_name, output_name, feature_name = config.term_losses()
    n_targets = target.shape[-1]
    time_forecast = output.forecast[:, :, -n_targets:]  # (B, H, M_t) or (B, H, M_t, Q)
    text_forecast = output.text_forecast[:, :, -n_targets:]
    lookback = None if insample is None else insample[..., -n_targets:]  # (B, L, M_t)
    if output.quantiles is not None:
        if supervised is None:
            supervised = pinball_loss(time_forecast, target, output.quantiles, mask)
        # the output term compares every quantile of the two branches, as M_t * Q series
        n_quantiles = len(output.quantiles)
        time_forecast = _flatten_quantiles(time_forecast, n_quantiles, repeat=False)
        text_forecast = _flatten_quantiles(text_forecast, n_quantiles, repeat=False)
        mask = _flatten_quantiles(mask, n_quantiles, repeat=True)
        lookback = _flatten_quantiles(lookback, n_quantiles, repeat=True)
    elif supervised is None:
        supervised = term_distance(supervised_name, time_forecast, target, mask, lookback,
                                   config.mase_seasonality)
    consistency = term_distance(output_name, time_forecast, text_forecast, mask, lookback,
                                config.mase_seasonality)
    feature = feature_regularisation(output.time_features, output.text_features,
                                     distance(feature_name), config.feature_decay)
    total = (config.supervised_weight * supervised + config.output_weight * consistency
             + config.feature_weight * feature)
    return CALFLossParts(total=total, supervised=supervised, output=consistency, feature=feature)
