"""CALF, the cross-modal LLM forecaster, as a PyTorch core with sktime and darts adapters.

The core (``CALFConfig``, ``CALF``, training and persistence) needs neither sktime nor darts;
``CALFForecaster`` (sktime) and ``CALFModel`` (darts) are imported on first access.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from calf_forecaster.config import CALFConfig, TrainingConfig
from calf_forecaster.model import CALF, CALFOutput

if TYPE_CHECKING:
    from calf_forecaster.darts import CALFModel
    from calf_forecaster.sktime import CALFForecaster

__version__ = "0.1.0"
__all__ = ["CALF", "CALFConfig", "CALFForecaster", "CALFModel", "CALFOutput", "TrainingConfig"]

_LAZY = {"CALFForecaster": "calf_forecaster.sktime", "CALFModel": "calf_forecaster.darts"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'calf_forecaster' has no attribute {name!r}")
