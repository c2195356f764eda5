"""What every PyTorch engine shares: device and dtype, evaluation mode, numpy in and out."""
from __future__ import annotations

import logging
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

log = logging.getLogger(__name__)

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(device: Optional[str]) -> torch.device:
    """The requested device, or the CPU (with a warning) when it is not available."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        log.warning("device %r asked for, but CUDA is not available: running on the CPU", device)
        return torch.device("cpu")
    return dev


class TorchEngine:
    """An ``nn.Module`` on ``device`` in ``dtype`` (``"fp16"``, ``"bf16"`` or float32), in eval mode.

    After a half-precision cast the parts the module keeps in float32 (``keep_float32``) go
    back to float32. Subclasses implement a protocol of ``funasr.engines`` under
    ``torch.inference_mode()`` with :meth:`tensor` / :meth:`numpy` at the boundary.
    """

    def __init__(self, module: nn.Module, cfg: dict[str, Any], device: Optional[str] = None, dtype: Optional[str] = None) -> None:
        self.device = pick_device(device)
        module = module.to(self.device).eval()
        if dtype in DTYPES:
            module = module.to(DTYPES[dtype])
            if hasattr(module, "keep_float32"):
                module.keep_float32()
        self.module = module
        self.cfg = cfg

    def tensor(self, x: np.ndarray) -> torch.Tensor:
        """A numpy array as a tensor on the engine's device."""
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.device)

    @staticmethod
    def numpy(x: torch.Tensor) -> np.ndarray:
        """A tensor as a numpy array (float32 for half-precision tensors)."""
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()
        return x.detach().cpu().numpy()
