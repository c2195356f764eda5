"""FSMN-VAD on onnxruntime: a ``VADNet`` (funasr.engines) around the exported graph (numpy only)."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from funasr.models.fsmn_vad.family import NET_BLOCK_FRAMES


class FsmnVADOnnx:
    """``model``: ``speech`` (1, T, 400) and caches ``in_cache0..`` -> scores and ``out_cache0..``."""

    def __init__(self, load: Callable[[str], Any], cfg: dict[str, Any]) -> None:
        self.graph = load("model")
        self.cache_shapes = [tuple(self.graph.input_shapes[n]) for n in self.graph.input_names if n.startswith("in_cache")]

    def silence_prob(self, feats: np.ndarray, cache: Optional[list], sil_pdf_ids: Sequence[int]) -> tuple[np.ndarray, Any]:
        """Features (T, D) and the FSMN caches (None at the start) -> silence posterior per frame (T,), new caches."""
        if not len(feats):
            return np.zeros(0, dtype=np.float64), cache
        caches = cache or [np.zeros(s, dtype=np.float32) for s in self.cache_shapes]
        ids = list(sil_pdf_ids)
        p_sil = []
        for i in range(0, len(feats), NET_BLOCK_FRAMES):
            block = np.ascontiguousarray(feats[None, i : i + NET_BLOCK_FRAMES], dtype=np.float32)
            scores, *caches = self.graph(speech=block, **{f"in_cache{j}": c for j, c in enumerate(caches)})
            p_sil.append(scores[0][:, ids].astype(np.float64).sum(-1))
        return np.concatenate(p_sil), caches
