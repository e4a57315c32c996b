"""The CALF network: (B, L, M) lookback windows -> (B, H, M) forecasts (+ what the losses need).

Symbols
-------
B  batch size                      L  lookback length (``seq_len``)
H  horizon (``pred_len``)          M  number of variates (one token each)
D  backbone width                  P  number of word prototypes
K  backbone blocks kept            S  hidden states per branch (K + 1 with an LLM)
h  attention heads                 d  head width, D / h
Q  quantile levels (``config.quantiles``; quantile models only)

Data flow (``docs/method.md`` §1): instance normalisation -> variate tokens (B, M, L) ->
cross-modal match module -> temporal branch (LLM on ``x_time``) and, in training only, textual branch
(the same frozen LLM on ``x_text``) -> shared head -> de-normalisation. The two branches share one
in-memory copy of the frozen backbone: the textual branch runs the same module through
:func:`torch.func.functional_call` with its own position table and the pre-trained (frozen)
normalisation weights, with the LoRA layers switched off for that call.

Building a network does no I/O: ``CALF(config, parts)`` takes already-loaded
:class:`~calf_forecaster.backbone.BackboneParts`; :meth:`CALF.from_pretrained` loads them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from calf_forecaster._compat import (
    adapters_disabled,
    drop_output_capturing_hooks,
    lora_layers,
    register_output_capturing,
)
from calf_forecaster.backbone import (
    BackboneFamily,
    BackboneParts,
    add_lora,
    apply_trainable_policy,
    check_fits_backbone,
    load_backbone_parts,
    norm_parameter_names,
)
from calf_forecaster.config import CALFConfig, TrainingConfig

logger = logging.getLogger(__name__)

#: Per-window variance floor of the instance normalisation (docs/method.md §1).
NORMALISATION_EPS = 1e-5


@dataclass
class CALFOutput:
    """What one forward pass returns.

    Attributes
    ----------
    forecast
        Temporal-branch forecast, de-normalised, (B, H, M). The only output used for prediction.
        A quantile model (``config.quantiles`` set) forecasts (B, H, M, Q) instead: the Q levels
        of ``config.quantiles`` for every step and variate, non-decreasing along Q.
    text_forecast
        Textual-branch forecast (B, H, M), or (B, H, M, Q) for a quantile model; ``None`` when the
        textual branch was not run.
    time_features, text_features
        Projected hidden states of each branch, S tensors of (B, M, D), embedding output first and
        the deepest state (which includes the branch residual) last; ``None`` without textual branch.
    quantiles
        The Q levels along the last axis of a quantile model's forecasts; ``None`` otherwise.
    """

    forecast: Tensor
    text_forecast: Tensor | None = None
    time_features: list[Tensor] | None = None
    text_features: list[Tensor] | None = None
    quantiles: tuple[float, ...] | None = None


class CrossModalMatch(nn.Module):
    """Token embedding, one encoder layer across variates, cross-attention to word prototypes."""

    def __init__(self, config: CALFConfig, d_model: int, prototypes: Tensor) -> None:
        super().__init__()
        self.n_heads = config.n_heads
        self.token_embedding = nn.Linear(config.seq_len, d_model)
        self.encoder = nn.TransformerEncoderLayer(
            d_model, config.n_heads, dim_feedforward=config.encoder_ff_dim, dropout=config.dropout,
            activation="relu", batch_first=True, norm_first=False,
        )
        self.cross_attention = nn.MultiheadAttention(d_model, config.n_heads, dropout=0.0,
                                                     batch_first=True)
        self.register_buffer("prototypes", prototypes.clone())  # (P, D), fixed, moves with module

    def encode(self, tokens: Tensor) -> Tensor:
        """(B, M, L) normalised variate tokens -> ``x_time`` (B, M, D)."""
        return self.encoder(self.token_embedding(tokens))

    def attend_prototypes(self, x_time: Tensor) -> Tensor:
        """Cross-attention of ``x_time`` (B, M, D) to the prototypes -> ``x_text`` (B, M, D).

        Same result as ``cross_attention(x_time, prototypes, prototypes)`` with the prototypes
        repeated over the batch, but the prototypes' key/value projection runs once per call, and
        all B*M queries attend to the one (P, D) key/value set without copying it per sample.
        """
        batch, n_variates, width = x_time.shape
        heads, head_width = self.n_heads, width // self.n_heads
        weight, bias = self.cross_attention.in_proj_weight, self.cross_attention.in_proj_bias
        query = F.linear(x_time, weight[:width], bias[:width])  # (B, M, D)
        key = F.linear(self.prototypes, weight[width:2 * width], bias[width:2 * width])  # (P, D)
        value = F.linear(self.prototypes, weight[2 * width:], bias[2 * width:])  # (P, D)
        query = query.reshape(batch * n_variates, heads, head_width).transpose(0, 1)  # (h, B*M, d)
        key = key.reshape(-1, heads, head_width).transpose(0, 1)  # (h, P, d)
        value = value.reshape(-1, heads, head_width).transpose(0, 1)  # (h, P, d)
        scores = torch.bmm(query, key.transpose(1, 2)) * head_width ** -0.5  # (h, B*M, P)
        attended = torch.bmm(scores.softmax(dim=-1), value)  # (h, B*M, d)
        attended = attended.transpose(0, 1).reshape(batch, n_variates, width)  # (B, M, D)
        return self.cross_attention.out_proj(attended)


def _with_residual(hidden_states: tuple[Tensor, ...], inputs: Tensor) -> tuple[Tensor, list[Tensor]]:
    """Branch output ``last + inputs`` and the S states with the deepest replaced by that output.

    The deepest state including the residual reproduces the reference's in-place addition (§3).
    """
    output = hidden_states[-1] + inputs  # (B, M, D)
    return output, [*hidden_states[:-1], output]


class LanguageModelBranches(nn.Module):
    """Temporal and textual branches over one shared backbone (LoRA on the temporal side only)."""

    def __init__(self, backbone: nn.Module, family: BackboneFamily, config: CALFConfig) -> None:
        super().__init__()
        norm_names = set(norm_parameter_names(backbone))
        pretrained_norms = {name: p.detach().clone() for name, p in backbone.named_parameters()
                            if name in norm_names}
        backbone = add_lora(backbone, config, family)
        apply_trainable_policy(backbone, family)
        self.backbone = backbone
        self.n_states = config.n_layers + 1
        self.position_key = (f"{family.position_embedding}.weight"
                             if family.position_embedding is not None else None)
        if self.position_key is not None:
            table = dict(backbone.named_parameters())[self.position_key]
            self.text_position_embedding = nn.Parameter(table.detach().clone())
        self.norm_keys = list(pretrained_norms)
        for index, name in enumerate(self.norm_keys):  # the textual branch's frozen norms
            self.register_buffer(f"text_norm_{index}", pretrained_norms[name])
        self._lora_layers = lora_layers(backbone)

    def _run(self, inputs_embeds: Tensor, overrides: dict[str, Tensor] | None) -> tuple[Tensor, ...]:
        kwargs = {"inputs_embeds": inputs_embeds, "output_hidden_states": True, "return_dict": True}
        if overrides is None:
            return self.backbone(**kwargs).hidden_states
        return functional_call(self.backbone, overrides, (), kwargs, strict=False).hidden_states

    def temporal(self, x_time: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, M, D) -> branch output (B, M, D) and its S hidden states."""
        return _with_residual(self._run(x_time, None), x_time)

    def textual(self, x_text: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The frozen backbone with its own position table, pre-trained norms and no LoRA."""
        overrides = {name: getattr(self, f"text_norm_{index}")
                     for index, name in enumerate(self.norm_keys)}
        if self.position_key is not None:
            overrides[self.position_key] = self.text_position_embedding
        with adapters_disabled(self._lora_layers):  # the pre-trained backbone, no LoRA
            hidden_states = self._run(x_text, overrides)
        return _with_residual(hidden_states, x_text)


class ReplacementBranches(nn.Module):
    """Ablations of Tan et al.: no LLM, one attention layer, or one transformer block per branch."""

    def __init__(self, config: CALFConfig, d_model: int) -> None:
        super().__init__()
        self.mode = config.llm_mode
        self.n_states = 1 if self.mode == "none" else 2
        if self.mode == "attention":
            self.time_layer = nn.MultiheadAttention(d_model, config.n_heads, batch_first=True)
            self.text_layer = nn.MultiheadAttention(d_model, config.n_heads, batch_first=True)
        elif self.mode == "transformer":
            self.time_layer, self.text_layer = (
                nn.TransformerEncoderLayer(d_model, config.n_heads, config.encoder_ff_dim,
                                           config.dropout, batch_first=True)
                for _ in range(2)
            )

    def _run(self, layer: nn.Module | None, inputs: Tensor) -> tuple[Tensor, list[Tensor]]:
        if layer is None:  # "none": tokens go straight to the head
            return inputs, [inputs]
        hidden = layer(inputs, inputs, inputs, need_weights=False)[0] \
            if isinstance(layer, nn.MultiheadAttention) else layer(inputs)
        return _with_residual((inputs, hidden), inputs)

    def temporal(self, x_time: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, M, D) -> branch output (B, M, D) and its S hidden states."""
        return self._run(getattr(self, "time_layer", None), x_time)

    def textual(self, x_text: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(B, M, D) -> branch output (B, M, D) and its S hidden states."""
        return self._run(getattr(self, "text_layer", None), x_text)


class CALF(nn.Module):
    """The CALF network of ``docs/method.md``, for any number of variates M.

    Construction does no I/O: the backbone, its word prototypes and its fingerprint come in
    ``parts``. :meth:`from_pretrained` loads them for a config (the usual entry point).

    Parameters
    ----------
    config
        Architecture and backbone settings.
    parts
        The loaded backbone parts (:func:`~calf_forecaster.backbone.load_backbone_parts`); with
        ``llm_mode="llm"`` their ``model`` becomes the network's backbone (LoRA is injected in
        place, so do not reuse it).

    Examples
    --------
    >>> import torch
    >>> from calf_forecaster import CALF, CALFConfig
    >>> from calf_forecaster.testing import tiny_config
    >>> model = CALF.from_pretrained(tiny_config(seq_len=24, pred_len=12))
    >>> model.eval()(torch.randn(8, 24, 7)).forecast.shape
    torch.Size([8, 12, 7])
    """

    def __init__(self, config: CALFConfig, parts: BackboneParts) -> None:
        super().__init__()
        if not isinstance(parts, BackboneParts):
            raise TypeError(f"`parts` must be BackboneParts (load them with "
                            f"calf_forecaster.backbone.load_backbone_parts, or build the network "
                            f"with CALF.from_pretrained(config)), got {type(parts).__name__}")
        self.config = config
        self.d_model = parts.width
        check_fits_backbone(config, width=self.d_model)
        if config.n_prototypes != parts.prototypes.shape[0]:
            raise ValueError(f"`n_prototypes`={config.n_prototypes} but the parts hold "
                             f"{parts.prototypes.shape[0]} prototypes")
        self.embedding_fingerprint = parts.embedding_fingerprint
        self.cross_modal = CrossModalMatch(config, self.d_model, parts.prototypes)  # (P, D)
        if config.llm_mode == "llm":
            if parts.model is None or parts.family is None:
                raise ValueError("llm_mode='llm' needs parts with the backbone model; load them "
                                 "with load_backbone_parts(config)")
            self.max_variates = parts.max_positions
            self.branches: LanguageModelBranches | ReplacementBranches = \
                LanguageModelBranches(parts.model, parts.family, config)
        else:
            self.max_variates = None
            self.branches = ReplacementBranches(config, self.d_model)
        n_states = self.branches.n_states
        self.time_feature_projections = nn.ModuleList(
            nn.Linear(self.d_model, self.d_model, bias=False) for _ in range(n_states))
        self.text_feature_projections = nn.ModuleList(
            nn.Linear(self.d_model, self.d_model, bias=False) for _ in range(n_states))
        # A quantile model's head gives Q * H values per token, laid out quantile-major (q * H + h).
        self.n_quantiles = None if config.quantiles is None else len(config.quantiles)
        self.head = nn.Linear(self.d_model, config.pred_len * (self.n_quantiles or 1))
        # State-dict entries rebuilt from the pre-trained backbone (never saved): its frozen
        # weights and the textual branch's copies of its norms. Random weights are always saved.
        self.backbone_state_keys: frozenset[str] = frozenset(
            ({name for name, p in self.named_parameters() if not p.requires_grad}
             | {name for name, _ in self.named_buffers() if ".text_norm_" in name})
            if config.pretrained and config.llm_mode == "llm" else ()
        )
        self.train()  # from_pretrained leaves the backbone in eval mode (its dropout off)

    @classmethod
    def from_pretrained(cls, config: CALFConfig, prototypes: Tensor | None = None,
                        cache_dir: str | None = None) -> CALF:
        """Load the backbone (and compute or read its prototypes) for ``config``, then build.

        Parameters
        ----------
        config
            The network's configuration; ``config.backbone`` is a hub name or a local directory.
        prototypes
            Known word prototypes (P, D), e.g. those of a saved model; computed otherwise.
        cache_dir
            Prototype cache folder; default ``calf_forecaster.paths.cache_dir()``.

        Raises
        ------
        calf_forecaster.backbone.BackboneNotFoundError
            If the backbone cannot be loaded; the message says how to fix it.
        """
        return cls(config, load_backbone_parts(config, prototypes, cache_dir))

    # ------------------------------------------------------------------ forward

    def _check_input(self, x: Tensor) -> None:
        if not isinstance(x, Tensor):
            raise TypeError(f"input must be a torch.Tensor of shape (batch, seq_len, n_variates), "
                            f"got {type(x).__name__}")
        if x.ndim != 3:
            raise ValueError(f"input must have rank 3 (batch, seq_len, n_variates), got shape "
                             f"{tuple(x.shape)}")
        if not x.is_floating_point():
            raise TypeError(f"input must be floating point, got dtype {x.dtype}")
        if x.shape[1] != self.config.seq_len:
            raise ValueError(f"input lookback is {x.shape[1]} steps but the model was built with "
                             f"`seq_len`={self.config.seq_len}")
        if self.max_variates is not None and x.shape[2] > self.max_variates:
            raise ValueError(f"{x.shape[2]} variates exceed the backbone's position table of "
                             f"{self.max_variates}; use fewer columns or a backbone with more "
                             f"positions")

    def forward(self, x: Tensor, with_text_branch: bool | None = None) -> CALFOutput:
        """Forecast from lookback windows.

        Parameters
        ----------
        x
            Lookback windows (B, L, M), floating point.
        with_text_branch
            Also run the textual branch and return the losses' features; default: in training mode.

        Returns
        -------
        CALFOutput
        """
        self._check_input(x)
        # Statistics and (de-)normalisation in float64: values near float32's range (1e30) would
        # overflow the variance; the network itself runs in its own dtype.
        output_dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        x = x.double()
        mean = x.mean(dim=1, keepdim=True).detach()  # (B, 1, M)
        std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + NORMALISATION_EPS).detach()
        tokens = ((x - mean) / std).to(self.head.weight.dtype).transpose(1, 2)  # (B, M, L)
        x_time = self.cross_modal.encode(tokens)  # (B, M, D)
        time_output, time_states = self.branches.temporal(x_time)  # (B, M, D), S x (B, M, D)
        forecast = self._denormalised_head(time_output, mean, std, output_dtype)  # (B, H, M)
        levels = self.config.quantiles
        if not (self.training if with_text_branch is None else with_text_branch):
            return CALFOutput(forecast, quantiles=levels)
        x_text = self.cross_modal.attend_prototypes(x_time)  # (B, M, D)
        text_output, text_states = self.branches.textual(x_text)
        return CALFOutput(
            forecast=forecast,
            text_forecast=self._denormalised_head(text_output, mean, std, output_dtype),
            time_features=[p(s) for p, s in zip(self.time_feature_projections, time_states)],
            text_features=[p(s) for p, s in zip(self.text_feature_projections, text_states)],
            quantiles=levels,
        )

    def _denormalised_head(self, tokens: Tensor, mean: Tensor, std: Tensor,
                           dtype: torch.dtype) -> Tensor:
        if self.n_quantiles is not None:
            return self._denormalised_quantiles(tokens, mean, std, dtype)
        normalised = self.head(tokens).transpose(1, 2)  # (B, M, D) -> (B, H, M)
        return (normalised.double() * std + mean).to(dtype)

    def _denormalised_quantiles(self, tokens: Tensor, mean: Tensor, std: Tensor,
                                dtype: torch.dtype) -> Tensor:
        """(B, M, D) -> (B, H, M, Q) quantiles, sorted along Q so that they never cross.

        Sorting (the rearrangement of Chernozhukov et al., 2010) is differentiable and never
        increases the pinball loss; de-normalising with ``std > 0`` keeps the order.
        """
        batch, n_variates, _ = tokens.shape
        normalised = self.head(tokens).reshape(batch, n_variates, self.n_quantiles, -1)
        normalised = normalised.sort(dim=2).values.permute(0, 3, 1, 2)  # (B, H, M, Q)
        return (normalised.double() * std[..., None] + mean[..., None]).to(dtype)

    def predict(self, x: Tensor) -> Tensor:
        """Temporal-branch forecast (B, H, M) of lookback windows (B, L, M); no textual branch.

        (B, H, M, Q) for a quantile model."""
        return self.forward(x, with_text_branch=False).forecast

    # ------------------------------------------------------------------ parameters and state

    def __getstate__(self) -> dict[str, object]:
        """Make the model picklable (``torch.save(model)``, ``ddp_spawn``, multiprocessing).

        transformers' lazily installed hidden-state hooks are dropped first (see
        :func:`~calf_forecaster.backbone.drop_output_capturing_hooks`); they are reinstalled at the
        next forward, so this changes no computation.
        """
        drop_output_capturing_hooks(self)
        return super().__getstate__()

    def __setstate__(self, state: dict[str, object]) -> None:
        super().__setstate__(state)
        register_output_capturing(self)  # a fresh process has not registered the backbone's class

    def feature_projection_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the feature projections (the second optimiser of §4)."""
        yield from self.time_feature_projections.parameters()
        yield from self.text_feature_projections.parameters()

    def reference_projection_parameters(self) -> Iterator[nn.Parameter]:
        """The cross-modal module's attention projections that the authors' code trains with the
        feature projections (its ``'_proj'`` name match, ``docs/method.md`` §4): the input and
        output projections of the encoder's self-attention and of the cross-attention."""
        for attention in (self.cross_modal.encoder.self_attn, self.cross_modal.cross_attention):
            yield attention.in_proj_weight
            yield attention.in_proj_bias
            yield from attention.out_proj.parameters()

    def parameter_groups(self, training: TrainingConfig) -> list[dict[str, object]]:
        """The two optimiser groups of ``docs/method.md`` §4: main, then feature group.

        The main group (``lr=training.learning_rate``) is cosine-annealed, the feature group
        (``lr=training.feature_learning_rate``) constant. ``training.optimizer_grouping``
        chooses what the feature group holds: the feature projections (``"paper"``), or also
        the cross-modal attention projections (``"reference"``, as the authors' code). Only
        parameters with ``requires_grad`` are included.
        """
        second = list(self.feature_projection_parameters())
        if training.optimizer_grouping == "reference":
            second += list(self.reference_projection_parameters())
        second = [p for p in second if p.requires_grad]
        chosen = {id(p) for p in second}
        main = [p for p in self.parameters() if p.requires_grad and id(p) not in chosen]
        return [{"params": main, "lr": training.learning_rate},
                {"params": second, "lr": training.feature_learning_rate}]

    def main_parameters(self) -> Iterator[nn.Parameter]:
        """Every other trainable parameter (the first optimiser of §4, paper grouping)."""
        projections = {id(p) for p in self.feature_projection_parameters()}
        yield from (p for p in self.parameters() if p.requires_grad and id(p) not in projections)

    def trainable_parameter_names(self) -> list[str]:
        """Names of all parameters with ``requires_grad``."""
        return [name for name, p in self.named_parameters() if p.requires_grad]

    def portable_state_dict(self) -> dict[str, Tensor]:
        """The state that is not the pre-trained backbone's: what a saved model must contain."""
        return {name: tensor.detach() for name, tensor in self.state_dict().items()
                if name not in self.backbone_state_keys}

    def load_portable_state_dict(self, state: dict[str, Tensor]) -> None:
        """Load :meth:`portable_state_dict` output; anything missing or unexpected raises."""
        result = self.load_state_dict(state, strict=False)
        missing = sorted(set(result.missing_keys) - self.backbone_state_keys)
        if missing or result.unexpected_keys:
            raise KeyError(f"state does not fit this CALF configuration: missing {missing[:5]}, "
                           f"unexpected {list(result.unexpected_keys)[:5]}")
