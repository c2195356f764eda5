"""The streaming Paraformer on onnxruntime: a ``StreamingASRNet`` (funasr.engines) over the exported graphs (numpy only).

An export of ours has ``model_look_back`` / ``decoder_look_back``, which take each stream's
attention look-back (encoder keys/values of earlier chunks, earlier encoder output for the
decoder), so every look-back setting decodes as on PyTorch; only those two graphs are loaded.
A folder with FunASR's online pair alone (``model`` / ``decoder``, no look-back inputs) decodes
as with ``encoder_chunk_look_back=0`` and ``decoder_chunk_look_back=0`` (as FunASR's runtimes
do), with a warning when more is asked.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np

from funasr.errors import ModelNotFoundError
from funasr.models.paraformer_streaming.chunks import ChunkSettings, StreamingNet
from funasr.models.paraformer_streaming.family import (
    DECODER_GRAPH, DECODER_LOOK_BACK_GRAPH, EMBEDS, EMBEDS_LEN, ENC, ENC_LEN, ENCODER_GRAPH, ENCODER_LOOK_BACK_GRAPH, IN_CACHE,
    PAST_ENC, PAST_ENC_LEN, PAST_KEYS, PAST_LEN, PAST_VALUES, SPEECH, SPEECH_LENGTHS,
)

log = logging.getLogger(__name__)


@dataclass
class OnnxStreamCache:
    """One stream's network memory in the graphs' terms (None: nothing kept yet)."""

    fsmn: Optional[list[np.ndarray]] = None  # per decoder layer, the FSMN inputs (D, kernel-1)
    keys: Optional[np.ndarray] = None  # (layers, L, D) encoder keys of earlier chunks
    values: Optional[np.ndarray] = None  # (layers, L, D) encoder values of earlier chunks
    enc: Optional[np.ndarray] = None  # (L, D) earlier encoder output the decoder's cross-attention sees


def keep_last(old: Optional[np.ndarray], new: np.ndarray, keep: int, axis: int) -> np.ndarray:
    """``new`` after ``old`` along ``axis``, cut to the last ``keep`` frames (-1: all; ``old`` None: ``new`` as it is), a copy."""
    if old is None:
        return new.copy()
    joined = np.concatenate([old, new], axis=axis)
    if keep < 0:
        return joined
    index = [slice(None)] * joined.ndim
    index[axis] = slice(-keep, None)
    return joined[tuple(index)]


def right_padded(items: list[Optional[np.ndarray]], shape: tuple[int, ...], axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-item arrays of ``shape`` with any length on ``axis`` (None: empty) -> a batch padded to at least 1 frame, lengths i32."""
    lens = np.array([0 if a is None else a.shape[axis] for a in items], dtype=np.int32)
    full = list(shape)
    full[axis] = max(1, int(lens.max()))  # one masked frame when nothing is kept: no zero-sized tensors
    batch = np.zeros((len(items), *full), dtype=np.float32)
    for i, a in enumerate(items):
        if a is not None:
            batch[(i, *[slice(None)] * axis, slice(0, a.shape[axis]))] = a
    return batch, lens


class ParaformerStreamingOnnx(StreamingNet):
    """``encode_chunks`` / ``decode_chunks`` of many streams' chunks through the exported graphs."""

    def __init__(self, load: Callable[[str], Any], cfg: dict[str, Any]) -> None:
        try:
            self.encoder, self.decoder = load(ENCODER_LOOK_BACK_GRAPH), load(DECODER_LOOK_BACK_GRAPH)
            self.look_back = True
        except ModelNotFoundError:
            self.encoder, self.decoder = load(ENCODER_GRAPH), load(DECODER_GRAPH)
            self.look_back = False
        self.cache_names = [n for n in self.decoder.input_names if n.startswith(IN_CACHE.format(""))]
        self.cache_shape = tuple(self.decoder.input_shapes[self.cache_names[0]][1:])  # (D, kernel-1)
        width = self.cache_shape[0]
        if self.look_back:
            self.past_shape = (int(self.encoder.input_shapes[PAST_KEYS][1]), 0, width)  # (layers, L, D)
        self._warned = False

    def new_cache(self) -> OnnxStreamCache:
        """The memory of a stream that has decoded nothing."""
        return OnnxStreamCache()

    def encode_chunks(
        self, windows: list[np.ndarray], caches: list[OnnxStreamCache], settings: list[ChunkSettings]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows (W_i, 560) of B streams -> encoder output (B, W, D), lengths (B,), CIF weights (B, W); caches updated."""
        lens = np.array([len(w) for w in windows], dtype=np.int64)
        batch = np.zeros((len(windows), int(lens.max()), windows[0].shape[1]), dtype=np.float32)
        for i, w in enumerate(windows):
            batch[i, : len(w)] = w
        feed = {SPEECH: batch, SPEECH_LENGTHS: lens.astype(np.int32)}
        if not self.look_back:
            if not self._warned and any(s.encoder_keep() or s.decoder_keep() for s in settings):
                self._warned = True
                log.warning("this export has only FunASR's online graphs (no attention look-back): decoding as with look-back 0 / 0; "
                            "export with funasr-export for model_look_back.onnx / decoder_look_back.onnx")
            enc, _, alphas = self.encoder(**feed)
            return enc, lens, alphas
        feed[PAST_KEYS], past_lens = right_padded([c.keys for c in caches], self.past_shape, 1)
        feed[PAST_VALUES], _ = right_padded([c.values for c in caches], self.past_shape, 1)
        feed[PAST_LEN] = past_lens
        enc, _, alphas, keys, values = self.encoder(**feed)
        for i, (cache, s) in enumerate(zip(caches, settings)):
            keep = s.encoder_keep()
            if keep:
                stop = int(lens[i]) - s.chunk_size[2]  # the look-ahead frames are seen again in the next window
                cache.keys = keep_last(cache.keys, keys[i, :, :stop], keep, 1)
                cache.values = keep_last(cache.values, values[i, :, :stop], keep, 1)
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
        if self.look_back:
            feed[PAST_ENC], feed[PAST_ENC_LEN] = right_padded([c.enc for c in caches], (0, enc.shape[2]), 0)
        _, ids, *out_cache = self.decoder(**feed)
        for i, (cache, s) in enumerate(zip(caches, settings)):
            cache.fsmn = [c[i] for c in out_cache]
            keep = s.decoder_keep()
            if self.look_back and keep:
                cache.enc = keep_last(cache.enc, enc[i, : int(enc_lens[i])][-keep:], keep, 0)
        return [ids[i, : counts[i]].tolist() for i in range(len(embeds))]
