"""FSMN-VAD on PyTorch: a ``VADNet`` (funasr.engines) around the module; the FSMN cache is a list of tensors."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from funasr.engines.torch import TorchEngine
from funasr.models.fsmn_vad.family import NET_BLOCK_FRAMES


class FsmnVADEngine(TorchEngine):
    """Silence posteriors per frame, ``NET_BLOCK_FRAMES`` frames per network call."""

    @torch.inference_mode()
    def silence_prob(self, feats: np.ndarray, cache: Optional[Any], sil_pdf_ids: Sequence[int]) -> tuple[np.ndarray, Any]:
        """Features (T, D) and the FSMN cache (None at the start) -> silence posterior per frame (T,), new cache."""
        if not len(feats):
            return np.zeros(0, dtype=np.float64), cache
        dtype = next(self.module.parameters()).dtype
        x = self.tensor(feats)[None].to(dtype)
        ids = list(sil_pdf_ids)
        p_sil = []
        for i in range(0, x.shape[1], NET_BLOCK_FRAMES):
            scores, cache = self.module(x[:, i : i + NET_BLOCK_FRAMES], cache)  # (1, T', 248)
            p_sil.append(scores[0, :, ids].double().sum(-1))
        return torch.cat(p_sil).cpu().numpy(), cache
