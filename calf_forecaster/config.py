"""Frozen, validated configuration of the CALF network and of its training recipe.

Every knob of the method (``calf-method.md`` sections 1-5) is a field with the reference default.
Ablations are config values: ``llm_mode`` replaces the language model (Tan et al., NeurIPS 2024)
and ``pretrained=False`` keeps the architecture with random weights.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

LLMMode = Literal["llm", "none", "attention", "transformer"]
LossName = Literal["l1", "smooth_l1", "mse"]

LLM_MODES: tuple[str, ...] = ("llm", "none", "attention", "transformer")
LOSS_NAMES: tuple[str, ...] = ("l1", "smooth_l1", "mse")


def _require(condition: bool, field: str, message: str) -> None:
    if not condition:
        raise ValueError(f"`{field}` {message}")


@dataclass(frozen=True)
class CALFConfig:
    """Architecture and loss of one CALF network (reference defaults: GPT-2 small, K=6).

    Parameters
    ----------
    seq_len
        Lookback length L: each variate's last ``seq_len`` values form one token.
    pred_len
        Horizon H produced by the shared head.
    backbone
        Hugging Face model name (``"gpt2"``) or a local directory holding a saved model.
    n_layers
        Number K of backbone blocks kept (the first K).
    pretrained
        Load the backbone's pre-trained weights; ``False`` keeps the architecture, random weights.
    llm_mode
        ``"llm"`` is CALF; ``"none"`` sends tokens straight to the head (Tan et al.'s "w/o LLM"),
        ``"attention"`` replaces the LLM by one self-attention layer ("LLM2Attn"),
        ``"transformer"`` by one transformer encoder block ("LLM2Trsf").
    n_prototypes
        Number P of word prototypes (principal components of the word embeddings).
    lora_r, lora_alpha, lora_dropout
        LoRA rank, scaling numerator and dropout on the temporal branch's attention projection.
    lora_target_modules
        Module names LoRA wraps; ``None`` takes the backbone family's default (GPT-2: ``c_attn``).
    n_heads
        Heads of the cross-modal encoder layer and of the cross-attention to the prototypes.
    encoder_ff_dim
        Feed-forward width of the cross-modal encoder layer.
    dropout
        Dropout of the cross-modal encoder layer.
    loss
        Distance ``d`` used by all three loss terms: ``"l1"``, ``"smooth_l1"`` or ``"mse"``.
    supervised_weight, output_weight, feature_weight
        Weights of the supervised, output-consistency and feature-regularisation terms.
    feature_decay
        The feature term weighs hidden state k (0 = deepest) by ``feature_decay ** k``.
    trust_remote_code
        Passed to transformers; off unless asked for.
    revision
        Hub revision (branch, tag or commit) of ``backbone``.
    """

    seq_len: int = 96  # L: lookback window, one token per variate
    pred_len: int = 96  # H: forecast horizon of the head
    backbone: str = "gpt2"  # hub name or local directory of a Hugging Face model
    n_layers: int = 6  # K: first K backbone blocks are kept
    pretrained: bool = True  # False: same architecture, random initialisation
    llm_mode: LLMMode = "llm"  # "llm" (CALF) or an ablation replacing the LLM
    n_prototypes: int = 500  # P: word prototypes, principal components of the embeddings
    lora_r: int = 8  # LoRA rank
    lora_alpha: int = 32  # LoRA alpha (scaling = alpha / r)
    lora_dropout: float = 0.1  # dropout on the LoRA input
    lora_target_modules: tuple[str, ...] | None = None  # None: the backbone family's default
    n_heads: int = 12  # heads of the cross-modal encoder layer and cross-attention
    encoder_ff_dim: int = 2048  # feed-forward width of the cross-modal encoder layer
    dropout: float = 0.1  # dropout of the cross-modal encoder layer
    loss: LossName = "l1"  # distance of every loss term
    supervised_weight: float = 1.0  # weight of d(y_time, y_true)
    output_weight: float = 1.0  # weight of d(y_time, y_text)
    feature_weight: float = 0.01  # weight of the feature-regularisation sum
    feature_decay: float = 0.8  # weight decay per hidden state, deepest first
    trust_remote_code: bool = False  # let transformers run code shipped with the model
    revision: str | None = None  # hub revision of `backbone`

    def __post_init__(self) -> None:
        for name in ("seq_len", "pred_len", "n_layers", "n_prototypes", "lora_r", "n_heads",
                     "encoder_ff_dim"):
            value = getattr(self, name)
            _require(isinstance(value, int) and not isinstance(value, bool), name,
                     f"must be an int, got {value!r}")
            _require(value >= 1, name, f"must be >= 1, got {value}")
        _require(isinstance(self.lora_alpha, (int, float)) and self.lora_alpha > 0, "lora_alpha",
                 f"must be a positive number, got {self.lora_alpha!r}")
        for name in ("lora_dropout", "dropout"):
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and 0.0 <= value < 1.0, name,
                     f"must be in [0, 1), got {value!r}")
        for name in ("supervised_weight", "output_weight", "feature_weight"):
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and value >= 0.0, name,
                     f"must be a number >= 0, got {value!r}")
        _require(isinstance(self.feature_decay, (int, float)) and 0.0 < self.feature_decay <= 1.0,
                 "feature_decay", f"must be in (0, 1], got {self.feature_decay!r}")
        _require(self.llm_mode in LLM_MODES, "llm_mode",
                 f"must be one of {LLM_MODES}, got {self.llm_mode!r}")
        _require(self.loss in LOSS_NAMES, "loss", f"must be one of {LOSS_NAMES}, got {self.loss!r}")
        _require(isinstance(self.backbone, str) and self.backbone != "", "backbone",
                 "must be a non-empty model name or local directory")
        _require(isinstance(self.pretrained, bool), "pretrained",
                 f"must be a bool, got {self.pretrained!r}")
        if self.lora_target_modules is not None:
            if isinstance(self.lora_target_modules, list):
                object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))
            _require(isinstance(self.lora_target_modules, tuple) and len(self.lora_target_modules) > 0
                     and all(isinstance(m, str) for m in self.lora_target_modules),
                     "lora_target_modules", "must be None or a non-empty tuple of module names")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary of the fields."""
        data = dataclasses.asdict(self)
        if data["lora_target_modules"] is not None:
            data["lora_target_modules"] = list(data["lora_target_modules"])
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CALFConfig:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown CALFConfig fields {unknown}; known fields: {sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> CALFConfig:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class TrainingConfig:
    """The optimisation recipe of ``calf-method.md`` section 4 (long-term forecasting).

    Parameters
    ----------
    learning_rate
        Adam learning rate of everything trainable except the feature projections.
    feature_learning_rate
        Constant Adam learning rate of the feature projections.
    cosine_t_max, min_learning_rate
        Cosine annealing of ``learning_rate`` per epoch: period ``T_max`` and ``eta_min``.
    batch_size
        Windows per optimisation step.
    max_epochs
        Upper bound on training epochs.
    patience
        Early stopping: epochs without a better validation MSE before stopping.
    seed
        Seed of weights, dropout and shuffling; ``None`` leaves the global generators alone.
    """

    learning_rate: float = 5e-4  # main Adam, cosine-annealed per epoch
    feature_learning_rate: float = 1e-4  # feature projections' Adam, constant
    cosine_t_max: int = 20  # T_max of the cosine schedule, in epochs
    min_learning_rate: float = 1e-8  # eta_min of the cosine schedule
    batch_size: int = 256  # windows per step
    max_epochs: int = 100  # upper bound on epochs
    patience: int = 10  # early-stopping patience on validation MSE
    seed: int | None = 2021  # reference seed; report several

    def __post_init__(self) -> None:
        for name in ("learning_rate", "feature_learning_rate"):
            value = getattr(self, name)
            _require(isinstance(value, (int, float)) and value > 0, name,
                     f"must be a positive number, got {value!r}")
        _require(isinstance(self.min_learning_rate, (int, float)) and self.min_learning_rate >= 0,
                 "min_learning_rate", f"must be >= 0, got {self.min_learning_rate!r}")
        for name in ("cosine_t_max", "batch_size", "max_epochs", "patience"):
            value = getattr(self, name)
            _require(isinstance(value, int) and not isinstance(value, bool) and value >= 1, name,
                     f"must be an int >= 1, got {value!r}")
        _require(self.seed is None or (isinstance(self.seed, int) and self.seed >= 0), "seed",
                 f"must be None or an int >= 0, got {self.seed!r}")
