"""CT-Transformer on PyTorch: a ``PuncNet`` (funasr.engines) around the module."""
from __future__ import annotations

import numpy as np
import torch

from funasr.engines.torch import TorchEngine


class CTTransformerEngine(TorchEngine):
    """Token ids in, the most likely punctuation class per token out."""

    @torch.inference_mode()
    def predict(self, ids: np.ndarray) -> np.ndarray:
        """Punctuation class per token id (L,) -> (L,)."""
        lens = torch.tensor([len(ids)], device=self.device)
        return self.numpy(self.module(self.tensor(ids)[None], lens)[0].argmax(-1))
