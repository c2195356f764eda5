"""The streaming Paraformer on onnxruntime: a ``StreamingASRNet`` (funasr.engines) over ``model`` and ``decoder`` (numpy only).

The graphs have FunASR's online contract, which carries the decoder's FSMN memory but no
attention look-back: streams decode as with ``encoder_chunk_look_back=0`` and
``decoder_chunk_look_back=0`` (as FunASR's runtimes do), with a warning when more is asked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from funasr.models.paraformer_streaming.chunks import ChunkSettings, StreamingNet
from funasr.models.paraformer_streaming.family import (
    DECODER_GRAPH, EMBEDS, EMBEDS_LEN, ENC, ENC_LEN, ENCODER_GRAPH, IN_CACHE, SPEECH, SPEECH_LENGTHS,
)

log = logging.getLogger(__name__)


@dataclass
class OnnxStreamCache:
    """One stream's network memory in the graphs' terms: the decoder's FSMN inputs per layer (D, kernel-1)."""

    fsmn: Optional[list[np.ndarray]] = None  # None: nothing decoded yet (zeros)


class ParaformerStreamingOnnx(StreamingNet):
    """``encode_chunks`` / ``decode_chunks`` of many streams' chunks through the exported graphs."""

    def __init__(self, load: Callable[[str], Any], cfg: dict[str, Any]) -> None:
        self.encoder = load(ENCODER_GRAPH)
        self.decoder = load(DECODER_GRAPH)
        self.cache_names = [n for n in self.decoder.input_names if n.startswith(IN_CACHE.format(""))]
        self.cache_shape = tuple(self.decoder.input_shapes[self.cache_names[0]][1:])  # (D, kernel-1)
        self._warned = False

    def new_cache(self) -> OnnxStreamCache:
        """The memory of a stream that has decoded nothing."""
        return OnnxStreamCache()

    def encode_chunks(
        self, windows: list[np.ndarray], caches: list[OnnxStreamCache], settings: list[ChunkSettings]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows (W_i, 560) of B streams -> encoder output (B, W, D), lengths (B,), CIF weights (B, W)."""
        if not self._warned and any(s.encoder_keep() or s.decoder_keep() for s in settings):
            self._warned = True
            log.warning("the exported streaming graphs carry no attention look-back: decoding as with look-back 0 / 0")
        lens = np.array([len(w) for w in windows], dtype=np.int64)
        batch = np.zeros((len(windows), int(lens.max()), windows[0].shape[1]), dtype=np.float32)
        for i, w in enumerate(windows):
            batch[i, : len(w)] = w
        enc, _, alphas = self.encoder(**{SPEECH: batch, SPEECH_LENGTHS: lens.astype(np.int32)})
        return enc, lens, alphas

    def decode_chunks(
        self, enc: np.ndarray, enc_lens: np.ndarray, embeds: list[np.ndarray], caches: list[OnnxStreamCache],
        settings: list[ChunkSettings],
    ) -> list[list[int]]:
        """Encoder outputs and each item's fired embeddings (n_i >= 1, D) -> greedy ids per item; caches updated."""
        counts = np.array([len(e) for e in embeds], dtype=np.int32)
        batch = np.zeros((len(embeds), int(counts.max()), enc.shape[2]), dtype=np.float32)
        for i, e in enumerate(embeds):
            batch[i, : len(e)] = e
        zeros = np.zeros(self.cache_shape, dtype=np.float32)
        feed = {ENC: np.ascontiguousarray(enc, dtype=np.float32), ENC_LEN: enc_lens.astype(np.int32), EMBEDS: batch, EMBEDS_LEN: counts}
        for layer, name in enumerate(self.cache_names):
            feed[name] = np.stack([zeros if c.fsmn is None else c.fsmn[layer] for c in caches])
        _, ids, *out_cache = self.decoder(**feed)
        for i, cache in enumerate(caches):
            cache.fsmn = [c[i] for c in out_cache]
        return [ids[i, : counts[i]].tolist() for i in range(len(embeds))]
