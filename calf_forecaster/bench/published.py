"""The published CALF numbers that reports show beside ours, with their source.

Source: Liu et al., "CALF: Aligning LLMs for Time Series Forecasting via Cross-modal
Fine-Tuning", AAAI 2025 (arXiv 2403.07300), as collected in the project's method specification
(docs/method.md §6, §9, §10). Long-term, few-shot and zero-shot rows average the four horizons at
lookback 96; M4 is the weighted average over the six groups.
"""

from __future__ import annotations

SOURCE = ("Liu et al., CALF, AAAI 2025 (arXiv 2403.07300); docs/method.md §6, §9, §10; "
          "averages over H in {96, 192, 336, 720} at L=96")

#: (suite, data set) -> {metric: value}; few-shot keys carry the percent, zero-shot "src->tgt".
PUBLISHED: dict[tuple[str, str], dict[str, float]] = {
    ("long-term", "ETTh1"): {"mse": 0.432, "mae": 0.428},
    ("long-term", "ETTh2"): {"mse": 0.349, "mae": 0.382},
    ("long-term", "ETTm1"): {"mse": 0.395, "mae": 0.390},
    ("long-term", "ETTm2"): {"mse": 0.281, "mae": 0.321},
    ("long-term", "Weather"): {"mse": 0.250, "mae": 0.274},
    ("long-term", "ECL"): {"mse": 0.175, "mae": 0.265},
    ("long-term", "Traffic"): {"mse": 0.439, "mae": 0.281},
    ("few-shot", "ETTh1 10%"): {"mse": 0.644, "mae": 0.541},
    ("few-shot", "ETTm1 10%"): {"mse": 0.504, "mae": 0.462},
    ("zero-shot", "ETTh1->ETTm2"): {"mse": 0.316, "mae": 0.355},
    ("short-term", "M4 weighted average"): {"smape": 11.770, "mase": 1.570, "owa": 0.845},
}


#: (data set, H) -> {metric: value}: the paper's per-horizon long-term numbers (L=96), where
#: this project has them (ETTh1), preferred over the average in reports.
PUBLISHED_PER_HORIZON: dict[tuple[str, int], dict[str, float]] = {
    ("ETTh1", 96): {"mse": 0.369, "mae": 0.389},
    ("ETTh1", 192): {"mse": 0.427, "mae": 0.423},
    ("ETTh1", 336): {"mse": 0.456, "mae": 0.436},
    ("ETTh1", 720): {"mse": 0.479, "mae": 0.467},
}


def published(suite: str, cell: str, horizon: int | None = None
              ) -> tuple[dict[str, float], str] | None:
    """The published CALF numbers of one cell and what they are (``"H=96"`` or ``"avg over H"``).

    ``None`` when the paper gives none. A long-term cell with a known per-horizon number gets
    that number; otherwise the average over the four horizons.
    """
    if suite == "long-term" and (cell, horizon) in PUBLISHED_PER_HORIZON:
        return PUBLISHED_PER_HORIZON[(cell, horizon)], f"H={horizon}"
    values = PUBLISHED.get((suite, cell))
    if values is None:
        return None
    return values, ("M4 avg" if suite == "short-term" else "avg over H")
