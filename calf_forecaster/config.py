"""Frozen, validated configuration: the CALF network (``CALFConfig``) and its training
(``TrainingConfig``).

This module is the one declaration of the package's parameter surface. Every field carries its
default and its documentation (``metadata["doc"]``); the sktime and darts adapters build their
constructor signatures and parameter docs from these fields (:mod:`calf_forecaster.parameters`),
and all validation happens here, on construction. numpy scalars are accepted wherever a Python
``int`` or ``float`` is, and stored as the Python type.

The defaults are the reference configuration of ``docs/method.md`` (GPT-2 small, K=6, the
long-term recipe of §4). Ablations are config values: ``llm_mode`` replaces the language model
(Tan et al., NeurIPS 2024) and ``pretrained=False`` keeps the architecture with random weights.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any, Literal

LLMMode = Literal["llm", "none", "attention", "transformer"]
LossName = Literal["l1", "smooth_l1", "mse"]
TermLossName = Literal["l1", "smooth_l1", "mse", "smape", "mase"]
Grouping = Literal["paper", "reference"]
ValidationLossName = Literal["mse", "mae", "smape"]

LLM_MODES: tuple[str, ...] = ("llm", "none", "attention", "transformer")
LOSS_NAMES: tuple[str, ...] = ("l1", "smooth_l1", "mse")
#: Distances of the supervised and output terms: also M4's masked sMAPE and MASE (§9).
TERM_LOSS_NAMES: tuple[str, ...] = (*LOSS_NAMES, "smape", "mase")
GROUPINGS: tuple[str, ...] = ("paper", "reference")
#: What early stopping and the best-epoch restore can follow on the validation windows.
VALIDATION_LOSSES: tuple[str, ...] = ("mse", "mae", "smape")


def _field(default: Any, doc: str) -> Any:
    """A dataclass field with its default and its one documentation string."""
    return dataclasses.field(default=default, metadata={"doc": doc})


class ConfigTypeError(TypeError, ValueError):
    """A config field of the wrong type (also a ``ValueError``, like every invalid value)."""


def _fail(name: str, message: str, kind: type[Exception] = ValueError) -> None:
    raise kind(f"`{name}` {message}")


def _is_integral(value: object) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) \
        and type(value).__name__ != "bool_"


def _is_real(value: object) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) \
        and type(value).__name__ != "bool_"


def _integer(config: object, name: str, minimum: int) -> None:
    """Check that field ``name`` is an integer >= ``minimum``; store it as a Python int."""
    value = getattr(config, name)
    if not _is_integral(value):
        _fail(name, f"must be an int, got {value!r}", ConfigTypeError)
    if value < minimum:
        _fail(name, f"must be >= {minimum}, got {value}")
    object.__setattr__(config, name, int(value))


def _real(config: object, name: str, low: float, high: float = float("inf"),
          low_open: bool = False, high_open: bool = False) -> None:
    """Check that field ``name`` is a finite real in the given interval; store it as a float."""
    value = getattr(config, name)
    if not _is_real(value):
        _fail(name, f"must be a number, got {value!r}", ConfigTypeError)
    if value != value or value in (float("inf"), float("-inf")):
        _fail(name, f"must be a finite number, got {value!r}")
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high:
        if high == float("inf"):
            bound = f"{'>' if low_open else '>='} {low:g}"
        else:
            bound = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        _fail(name, f"must be {bound}, got {value!r}")
    object.__setattr__(config, name, float(value))


def _choice(config: object, name: str, choices: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in choices:
        _fail(name, f"must be one of {choices}, got {value!r}")


def _boolean(config: object, name: str) -> None:
    value = getattr(config, name)
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        _fail(name, f"must be a bool, got {value!r}", ConfigTypeError)
    object.__setattr__(config, name, bool(value))


def _quantile_levels(levels: object) -> tuple[float, ...]:
    """Check quantile levels (sorted, unique, in (0, 1), with 0.5); return them as floats."""
    if isinstance(levels, (str, bytes)) or not hasattr(levels, "__iter__"):
        _fail("quantiles", f"must be None or a sequence of levels in (0, 1), got {levels!r}",
              ConfigTypeError)
    values = list(levels)  # type: ignore[call-overload]
    if not values or not all(_is_real(v) for v in values):
        _fail("quantiles", f"must be None or a non-empty sequence of numbers in (0, 1), got "
                           f"{levels!r}", ConfigTypeError)
    floats = tuple(float(v) for v in values)
    if not all(0.0 < v < 1.0 for v in floats):
        _fail("quantiles", f"must lie in (0, 1), got {list(floats)}")
    if any(b <= a for a, b in zip(floats, floats[1:])):
        _fail("quantiles", f"must be sorted and unique, got {list(floats)}")
    if 0.5 not in floats:
        _fail("quantiles", f"must include 0.5 (the median is the point forecast), got "
                           f"{list(floats)}")
    return floats


class _ConfigMixin:
    """Dictionary round trip and validated copies, shared by both configs."""

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary of the fields."""
        data = dataclasses.asdict(self)  # type: ignore[call-overload]
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        """Inverse of :meth:`to_dict`; unknown keys raise ``ValueError``."""
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields {unknown}; known fields: "
                             f"{sorted(known)}")
        return cls(**data)

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` applied (and validated)."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]


@dataclass(frozen=True)
class CALFConfig(_ConfigMixin):
    """Architecture of one CALF network (reference defaults: GPT-2 small, K=6)."""

    seq_len: int = _field(96, "Lookback length L: each variate's last `seq_len` values form one "
                              "token.")
    pred_len: int = _field(96, "Horizon H produced by the shared head.")
    quantiles: tuple[float, ...] | None = _field(
        None, "Quantile levels the head forecasts for every variate and step instead of one "
              "point (sorted, unique, in (0, 1), 0.5 among them: the median is the point "
              "forecast), trained with the pinball loss; `None`: point forecasts "
              "(docs/method.md, Quantile forecasts).")
    backbone: str = _field("gpt2", "Hugging Face model name (e.g. `\"gpt2\"`) or local directory "
                                   "written by `save_pretrained`.")
    n_layers: int = _field(6, "Number K of backbone blocks kept (the first K).")
    pretrained: bool = _field(True, "Load the backbone's pre-trained weights; `False` keeps its "
                                    "architecture with random weights (the random-LLM ablation).")
    llm_mode: LLMMode = _field("llm", "`\"llm\"` is CALF; `\"none\"` sends the tokens straight to "
                                      "the head, `\"attention\"` replaces the language model by one "
                                      "self-attention layer, `\"transformer\"` by one transformer "
                                      "block (the ablations of Tan et al., NeurIPS 2024).")
    n_prototypes: int = _field(500, "Number P of word prototypes (principal components of the "
                                    "word embeddings); at most the backbone width.")
    lora_r: int = _field(8, "LoRA rank on the temporal branch's attention input projection.")
    lora_alpha: float = _field(32, "LoRA scaling numerator (scaling = lora_alpha / lora_r).")
    lora_dropout: float = _field(0.1, "Dropout on the LoRA input, in [0, 1).")
    lora_target_modules: tuple[str, ...] | None = _field(
        None, "Module names LoRA wraps; `None` takes the backbone family's default (GPT-2: "
              "`c_attn`).")
    n_heads: int = _field(12, "Heads of the cross-modal encoder layer and of the cross-attention "
                              "to the prototypes; must divide the backbone width.")
    encoder_ff_dim: int = _field(2048, "Feed-forward width of the cross-modal encoder layer.")
    dropout: float = _field(0.1, "Dropout of the cross-modal encoder layer, in [0, 1).")
    trust_remote_code: bool = _field(False, "Let transformers run code shipped with the backbone.")
    revision: str | None = _field(None, "Hub revision (branch, tag or commit) of `backbone`.")

    def __post_init__(self) -> None:
        for name in ("seq_len", "pred_len", "n_layers", "n_prototypes", "lora_r", "n_heads",
                     "encoder_ff_dim"):
            _integer(self, name, 1)
        _real(self, "lora_alpha", 0.0, low_open=True)
        for name in ("lora_dropout", "dropout"):
            _real(self, name, 0.0, 1.0, high_open=True)
        _choice(self, "llm_mode", LLM_MODES)
        if not isinstance(self.backbone, str) or not self.backbone:
            _fail("backbone", f"must be a non-empty model name or local directory, got "
                              f"{self.backbone!r}")
        _boolean(self, "pretrained")
        _boolean(self, "trust_remote_code")
        if self.revision is not None and not isinstance(self.revision, str):
            _fail("revision", f"must be None or a string, got {self.revision!r}")
        if self.quantiles is not None:
            object.__setattr__(self, "quantiles", _quantile_levels(self.quantiles))
        targets = self.lora_target_modules
        if targets is not None:
            if isinstance(targets, str) or not all(isinstance(m, str) for m in targets) \
                    or len(tuple(targets)) == 0:
                _fail("lora_target_modules", f"must be None or a non-empty sequence of module "
                                             f"names, got {targets!r}")
            object.__setattr__(self, "lora_target_modules", tuple(targets))


@dataclass(frozen=True)
class TrainingConfig(_ConfigMixin):
    """How a CALF network is trained: losses, optimiser recipe, data preparation, seed.

    The defaults are the long-term recipe of ``docs/method.md`` §4.
    """

    loss: LossName = _field("l1", "Distance `d` of all three loss terms: `\"l1\"` (ETT), "
                                  "`\"smooth_l1\"` (Weather, ECL, Traffic) or `\"mse\"`.")
    supervised_loss: TermLossName | None = _field(
        None, "Distance of the supervised term; `None` takes `loss`. Also `\"smape\"` and "
              "`\"mase\"`, the masked M4 losses of docs/method.md §9 (MASE scales by each "
              "lookback's seasonal-naive MAE at lag `mase_seasonality`).")
    output_loss: TermLossName | None = _field(
        None, "Distance of the output-consistency term; `None` takes `loss`; choices as "
              "`supervised_loss` (M4: `\"mase\"`).")
    feature_loss: LossName | None = _field(
        None, "Distance of the feature-regularisation terms; `None` takes `loss` (M4: "
              "`\"smooth_l1\"`).")
    mase_seasonality: int = _field(1, "Lag m of the in-sample seasonal-naive scale of the "
                                      "`\"mase\"` loss (M4: Yearly 1, Quarterly 4, Monthly 12, "
                                      "Weekly 1, Daily 1, Hourly 24).")
    supervised_weight: float = _field(1.0, "Weight of the supervised term d(y_time, y).")
    output_weight: float = _field(1.0, "Weight of the output-consistency term "
                                       "d(y_time, y_text).")
    feature_weight: float = _field(0.01, "Weight of the feature-regularisation sum.")
    feature_decay: float = _field(0.8, "The feature term weighs hidden state k (0 = deepest) by "
                                       "`feature_decay ** k`; in (0, 1].")
    learning_rate: float = _field(5e-4, "Adam learning rate of the main parameter group "
                                        "(cosine-annealed per epoch).")
    feature_learning_rate: float = _field(1e-4, "Constant Adam learning rate of the feature "
                                                "projections.")
    cosine_t_max: int | None = _field(20, "Period T_max, in epochs, of the cosine schedule of "
                                          "`learning_rate`; `None` keeps it constant.")
    min_learning_rate: float = _field(1e-8, "Floor eta_min of the cosine schedule.")
    optimizer_grouping: Grouping = _field(
        "paper", "`\"paper\"`: only the feature projections train at `feature_learning_rate`; "
                 "`\"reference\"`: also the cross-modal module's attention projections, as the "
                 "authors' code does (docs/method.md §4).")
    batch_size: int = _field(256, "Windows per optimisation step (and per prediction pass).")
    max_epochs: int = _field(100, "Most training epochs; `0` keeps the current (initial or "
                                  "pretrained) weights.")
    patience: int = _field(10, "Early stopping: epochs without a better validation score "
                               "(`validation_loss`) before stopping.")
    validation_loss: ValidationLossName = _field(
        "mse", "Score of the validation windows that early stopping and the best-epoch restore "
               "follow: `\"mse\"`, `\"mae\"` or `\"smape\"` (scale-free: M4, where series "
               "differ in scale by orders of magnitude, docs/method.md §9). A quantile model "
               "follows its pinball loss.")
    validation_size: float | int = _field(
        0.2, "End of every series held out for early stopping and restoring the best epoch: a "
             "fraction in [0, 1) of its length (float) or a number of time steps (int); at least "
             "the horizon either way, nothing if 0. Series too short to spare a validation "
             "window are trained on whole.")
    scale: bool = _field(True, "Standardise every column with the mean and standard deviation "
                               "of the training data before windowing, and undo it on the "
                               "forecasts (the network also normalises every window).")
    seed: int | None = _field(2021, "Seed of the initial weights, dropout and shuffling; `None` "
                                    "leaves the global generators alone.")

    def __post_init__(self) -> None:
        _choice(self, "loss", LOSS_NAMES)
        for name in ("supervised_loss", "output_loss"):
            if getattr(self, name) is not None:
                _choice(self, name, TERM_LOSS_NAMES)
        if self.feature_loss is not None:
            _choice(self, "feature_loss", LOSS_NAMES)
        _integer(self, "mase_seasonality", 1)
        for name in ("supervised_weight", "output_weight", "feature_weight"):
            _real(self, name, 0.0)
        _real(self, "feature_decay", 0.0, 1.0, low_open=True)
        for name in ("learning_rate", "feature_learning_rate"):
            _real(self, name, 0.0, low_open=True)
        _real(self, "min_learning_rate", 0.0)
        if self.cosine_t_max is not None:
            _integer(self, "cosine_t_max", 1)
        _choice(self, "optimizer_grouping", GROUPINGS)
        for name in ("batch_size", "patience"):
            _integer(self, name, 1)
        _choice(self, "validation_loss", VALIDATION_LOSSES)
        _integer(self, "max_epochs", 0)
        size = self.validation_size
        if _is_integral(size):
            _integer(self, "validation_size", 0)
        elif _is_real(size):
            _real(self, "validation_size", 0.0, 1.0, high_open=True)
        else:
            _fail("validation_size", f"must be a fraction in [0, 1) or an int number of steps, "
                                     f"got {size!r}", ConfigTypeError)
        _boolean(self, "scale")
        if self.seed is not None:
            if not _is_integral(self.seed):
                _fail("seed", f"must be None or an int >= 0, got {self.seed!r}", ConfigTypeError)
            _integer(self, "seed", 0)

    def term_losses(self) -> tuple[str, str, str]:
        """Distances of the supervised, output-consistency and feature terms (``None``: ``loss``)."""
        return (self.supervised_loss or self.loss, self.output_loss or self.loss,
                self.feature_loss or self.loss)


def field_docs(config_class: type) -> dict[str, str]:
    """``{field name: documentation}`` of a config class, in declaration order."""
    return {f.name: f.metadata["doc"] for f in dataclasses.fields(config_class)}


def _parameters_section(config_class: type) -> str:
    lines = ["", "    Parameters", "    ----------"]
    for field in dataclasses.fields(config_class):
        lines.append(f"    {field.name}")
        doc = field.metadata["doc"].replace("`", "``")
        lines.append(f"        {doc} Default: ``{field.default!r}``.")
    return "\n".join(lines) + "\n"


for _config in (CALFConfig, TrainingConfig):
    _config.__doc__ = (_config.__doc__ or "") + "\n" + _parameters_section(_config)
