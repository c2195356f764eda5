"""FSMN-VAD on PyTorch: a ``VADNet`` (funasr.engines) around the module; the FSMN cache is a list of tensors."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import numpy as np
import torch

from funasr.engines.torch import TorchEngine
from funasr.models.fsmn_vad.family import NET_BLOCK_FRAMES


class FsmnVADEngine(TorchEngine):
    """Silence posteriors per frame of a batch of streams, ``NET_BLOCK_FRAMES`` frames per network call."""

    @torch.inference_mode()
    def silence_probs(self, feats: Sequence[np.ndarray], caches: Sequence[Optional[list]],
                      sil_pdf_ids: Sequence[int]) -> tuple[list[np.ndarray], list[Any]]:
        """Per stream, features (T, D) of one T and the FSMN cache (None at the start) -> silence posteriors (T,), caches."""
        if not len(feats[0]):
            return [np.zeros(0, dtype=np.float64) for _ in feats], list(caches)
        dtype = next(self.module.parameters()).dtype
        x = self.tensor(np.stack(feats)).to(dtype)  # (B, T, D)
        cache = None
        if any(c is not None for c in caches):
            fresh = [layer.new_zeros(layer.shape) for layer in next(c for c in caches if c is not None)]
            cache = [torch.cat([fresh[j] if c is None else c[j] for c in caches]) for j in range(len(fresh))]
        ids = list(sil_pdf_ids)
        p_sil = []
        for i in range(0, x.shape[1], NET_BLOCK_FRAMES):
            scores, cache = self.module(x[:, i : i + NET_BLOCK_FRAMES], cache)  # (B, T', 248)
            p_sil.append(scores[:, :, ids].double().sum(-1))
        probs = torch.cat(p_sil, dim=1).cpu().numpy()  # (B, T)
        return list(probs), [[layer[b : b + 1] for layer in cache] for b in range(len(feats))]
