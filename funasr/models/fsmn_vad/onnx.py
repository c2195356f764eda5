"""FSMN-VAD on onnxruntime: a ``VADNet`` (funasr.engines) around the exported graph (numpy only)."""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import numpy as np

from funasr.models.fsmn_vad.family import IN_CACHE, NET_BLOCK_FRAMES, SPEECH


class FsmnVADOnnx:
    """``model``: ``speech`` (B, T, 400) and caches ``in_cache0..`` (B, 128, 19, 1) -> scores and ``out_cache0..``.

    Graphs exported with a fixed batch of 1 (FunASR's) run one stream per call.
    """

    def __init__(self, load: Callable[[str], Any], cfg: dict[str, Any]) -> None:
        self.graph = load("model")
        self.cache_names = [IN_CACHE.format(i) for i in range(len(self.graph.input_names) - 1)]  # one per FSMN layer
        shapes = [self.graph.input_shapes[n] for n in self.cache_names]
        self.batched = not isinstance(shapes[0][0], int)  # a named (dynamic) batch axis
        self.cache_shapes = [(1, *s[1:]) for s in shapes]  # one stream's

    def silence_probs(self, feats: Sequence[np.ndarray], caches: Sequence[Optional[list]],
                      sil_pdf_ids: Sequence[int]) -> tuple[list[np.ndarray], list[Any]]:
        """Per stream, features (T, D) of one T and the FSMN caches (None at the start) -> silence posteriors (T,), caches."""
        if not len(feats[0]):
            return [np.zeros(0, dtype=np.float64) for _ in feats], list(caches)
        if not self.batched and len(feats) > 1:
            outs = [self.silence_probs([f], [c], sil_pdf_ids) for f, c in zip(feats, caches)]
            return [p for (p,), _ in outs], [c for _, (c,) in outs]
        zeros = [np.zeros(s, dtype=np.float32) for s in self.cache_shapes]
        layers = [np.concatenate([zero if c is None else c[j] for c in caches]) for j, zero in enumerate(zeros)]
        x = np.stack(feats).astype(np.float32, copy=False)  # (B, T, D)
        ids = list(sil_pdf_ids)
        p_sil = []
        for i in range(0, x.shape[1], NET_BLOCK_FRAMES):
            block = np.ascontiguousarray(x[:, i : i + NET_BLOCK_FRAMES])
            scores, *layers = self.graph(**{SPEECH: block}, **dict(zip(self.cache_names, layers)))
            p_sil.append(scores[:, :, ids].astype(np.float64).sum(-1))
        probs = np.concatenate(p_sil, axis=1)  # (B, T)
        return list(probs), [[layer[b : b + 1] for layer in layers] for b in range(len(feats))]
