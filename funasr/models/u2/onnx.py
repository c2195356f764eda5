"""The U2 family on onnxruntime: an ``ASRNet`` (funasr.engines) around the encoder chunk, CTC and decoder graphs (numpy only).

Whole utterances run through the chunk graph too: with every key cached and no mask, one window
of the whole utterance is full context, and windows of ``decoding_chunk_size`` frames stream it.
Keeping only the last ``num_decoding_left_chunks`` chunks of keys is done here, between calls.
"""
from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np

from funasr.models.u2.decoding import ChunkCache, U2Net
from funasr.models.u2.family import (
    ATT_CACHE, CHUNK, CNN_CACHE, CTC, DECODER, ENCODER, ENCODER_OUT, HIDDEN, HYPS, HYPS_LENS, OFFSET,
)
from funasr.options import SearchOptions
from funasr.search import Hypothesis, run_search


class U2Onnx(U2Net):
    """``load(name)`` loads an exported graph: a callable taking inputs by name, with ``input_names`` and ``input_shapes``."""

    def __init__(self, load: Callable[[str], Any], cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.encoder, self.ctc, self.decoder = load(ENCODER), load(CTC), load(DECODER)
        enc = cfg.get("encoder_conf") or {}
        self.layers, self.heads = int(enc.get("num_blocks", 6)), int(enc.get("attention_heads", 4))
        self.d = int(enc.get("output_size", 256))
        self.cnn_shape = tuple(self.encoder.input_shapes[CNN_CACHE]) if CNN_CACHE in self.encoder.input_names else None

    def new_cache(self) -> ChunkCache:
        """The memory of a stream that has encoded nothing."""
        att = np.zeros((self.layers, self.heads, 0, 2 * (self.d // self.heads)), dtype=np.float32)
        cnn = np.zeros(self.cnn_shape, dtype=np.float32) if self.cnn_shape else np.zeros(0, dtype=np.float32)
        return ChunkCache(0, att, cnn, np.zeros((0, self.d), dtype=np.float32), np.zeros((0, 0), dtype=np.float32))

    def chunk(self, window: np.ndarray, cache: Optional[ChunkCache], keep: int) -> ChunkCache:
        """One fbank window (T, 80) of a stream through the encoder and CTC graphs; the cache after it."""
        cache = cache or self.new_cache()
        feed = {CHUNK: window[None].astype(np.float32), OFFSET: np.array(cache.offset, dtype=np.int64), ATT_CACHE: cache.att}
        if self.cnn_shape:
            feed[CNN_CACHE] = cache.cnn
        out, att, cnn = self.encoder(**{k: v for k, v in feed.items() if k in self.encoder.input_names})
        (ctc,) = self.ctc(**{HIDDEN: out})
        if keep >= 0:
            att = att[:, :, att.shape[2] - min(keep, att.shape[2]) :]
        ctc_all = ctc[0] if not len(cache.ctc) else np.concatenate([cache.ctc, ctc[0]])
        return ChunkCache(cache.offset + out.shape[1], att, cnn, np.concatenate([cache.enc, out[0]]), ctc_all)

    def stream_chunks(self, windows: list[np.ndarray], caches: list[Optional[ChunkCache]], keep: list[int]) -> list[ChunkCache]:
        """The next fbank window of several streams (one graph call each); their caches after it."""
        return [self.chunk(w, c, k) for w, c, k in zip(windows, caches, keep)]

    def search(self, feats: np.ndarray, lens: np.ndarray, opts: SearchOptions) -> list[Hypothesis]:
        """One hypothesis per item: its fbank window by window (one window: full context), then the search."""
        out = []
        for f, n in zip(feats, lens):
            if n <= self.right_context:
                out.append(Hypothesis([], None, []))
                continue
            chunk = opts.decoding_chunk_size if self.streamable else -1  # models trained without chunks ignore it
            context, cache = self.right_context + 1, None
            size, stride = ((chunk - 1) * self.rate + context, chunk * self.rate) if chunk > 0 else (int(n), int(n))
            keep = chunk * opts.num_decoding_left_chunks if chunk > 0 else -1
            for start in range(0, int(n) - context + 1, stride):
                cache = self.chunk(f[start : min(start + size, int(n))], cache, keep)
            out.append(self.finish(cache, opts))
        return out

    def search_one(self, enc: np.ndarray, ctc: np.ndarray, opts: SearchOptions) -> Hypothesis:
        """The search of ``opts`` over one utterance's encoder output (1, T', d) and CTC log-probs (T', V)."""

        def decoder(hyps: np.ndarray, lens: np.ndarray, reverse: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
            l2r, r2l = self.decoder(**{HYPS: hyps, HYPS_LENS: lens, ENCODER_OUT: enc.astype(np.float32)})
            return l2r, r2l if reverse and r2l.ndim == 3 else None

        return run_search(opts.decoding_method, ctc, decoder, self.sos, self.eos, self.blank_id, opts.beam(),
                          opts.ctc_weight, opts.reverse_weight)
