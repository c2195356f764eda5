"""Building the network a resolved config names: the one place models are constructed.

``AutoModel`` builds on the meta device (no memory, no initialisation; every tensor then comes from
the checkpoint); training builds on a real device, where parameters get PyTorch's default
initialisation (the reference has no initialiser of its own for these modules).
"""
from __future__ import annotations

from typing import Any, Optional, Union

import torch
from torch import nn

from funasr import registry


def build_network(
    cfg: dict[str, Any], frontend: Any, tokenizer: Any, device: Optional[Union[str, torch.device]] = None
) -> nn.Module:
    """The model ``cfg["model"]`` sized from the frontend (input size) and the token list (vocabulary), on ``device``."""
    with torch.device(device if device is not None else "cpu"):
        return registry.lookup(cfg["model"]).from_config(
            cfg,
            input_size=frontend.output_size() if frontend is not None else None,
            vocab_size=len(tokenizer) if tokenizer is not None else None,
        )
