"""FSMN-VAD on onnxruntime: a ``VADNet`` (funasr.engines) around the exported graph (numpy only)."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from funasr.models.fsmn_vad.family import IN_CACHE, NET_BLOCK_FRAMES, SPEECH


class FsmnVADOnnx:
    """``model``: ``speech`` (1, T, 400) and caches ``in_cache0..`` -> scores and ``out_cache0..``."""

    def __init__(self, load: Callable[[str], Any], cfg: dict[str, Any]) -> None:
        self.graph = load("model")
        self.cache_names = [IN_CACHE.format(i) for i in range(len(self.graph.input_names) - 1)]  # one per FSMN layer
        self.cache_shapes = [tuple(self.graph.input_shapes[n]) for n in self.cache_names]

    def silence_prob(self, feats: np.ndarray, cache: Optional[list], sil_pdf_ids: Sequence[int]) -> tuple[np.ndarray, Any]:
        """Features (T, D) and the FSMN caches (None at the start) -> silence posterior per frame (T,), new caches."""
        if not len(feats):
            return np.zeros(0, dtype=np.float64), cache
        caches = cache or [np.zeros(s, dtype=np.float32) for s in self.cache_shapes]
        ids = list(sil_pdf_ids)
        p_sil = []
        for i in range(0, len(feats), NET_BLOCK_FRAMES):
            block = np.ascontiguousarray(feats[None, i : i + NET_BLOCK_FRAMES], dtype=np.float32)
            scores, *caches = self.graph(**{SPEECH: block}, **dict(zip(self.cache_names, caches)))
            p_sil.append(scores[0][:, ids].astype(np.float64).sum(-1))
        return np.concatenate(p_sil), caches
