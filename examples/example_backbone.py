"""Backbone choice shared by the examples: pre-trained when available, else said once and random.

This visible, announced fallback belongs to the examples only; the library raises
``BackboneNotFoundError`` instead.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
from pathlib import Path

from calf_forecaster import CALFConfig
from calf_forecaster.backbone import BackboneNotFoundError, load_backbone, save_backbone_config

logger = logging.getLogger(__name__)


def hub_reachable(host: str = "huggingface.co", timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the hub opens within ``timeout`` seconds."""
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def pretrained_or_random(backbone: str, workdir: Path) -> tuple[str, bool]:
    """``(backbone, True)`` if its weights load, else ``(GPT-2 config dir, False)``, said once."""
    if not Path(backbone).exists() and not hub_reachable():  # offline: cache only, fail fast
        os.environ["HF_HUB_OFFLINE"] = "1"
        if "huggingface_hub" in sys.modules:
            import huggingface_hub.constants

            huggingface_hub.constants.HF_HUB_OFFLINE = True
    try:
        load_backbone(CALFConfig(backbone=backbone, n_layers=1))  # cheap probe: one block
        return backbone, True
    except BackboneNotFoundError:
        print(f"[calf example] pre-trained '{backbone}' weights cannot be fetched (offline, not "
              f"cached); continuing with the same GPT-2 architecture randomly initialised.")
        return str(save_backbone_config(workdir / "gpt2-config")), False
