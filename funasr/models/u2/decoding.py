"""What the U2 family's PyTorch and onnxruntime engines share (numpy only): model facts and stream memory."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from funasr.engines import Recognition
from funasr.options import SearchOptions
from funasr.search import Hypothesis, word_pieces

# input_layer -> (subsampling rate, right context in fbank frames)
SUBSAMPLING_RATES = {"conv2d": (4, 6), "conv2d6": (6, 10), "conv2d8": (8, 14)}


@dataclass
class ChunkCache:
    """One stream's network memory: encoder frames emitted, attention and convolution caches, all output so far."""

    offset: int  # encoder frames emitted
    att: Any  # (L, H, Tc, 2 d_k) keys/values kept for the next chunk
    cnn: Any  # (L, d, K-1) the conv modules' last inputs (empty: none yet)
    enc: Any  # (T', d) every encoder frame so far (for the final search)
    ctc: np.ndarray  # (T', V) their CTC log-probabilities


class U2Net:
    """Base of both U2 engines: the facts a task needs, read from the resolved config."""

    always_timestamps = False
    timestamps_on_request = True
    takes_hotwords = False
    always_bias = False

    def __init__(self, cfg: dict[str, Any]) -> None:
        enc = cfg.get("encoder_conf") or {}
        self.rate, self.right_context = SUBSAMPLING_RATES.get(enc.get("input_layer", "conv2d"), (0, 0))
        self.frame_ms = self.rate * 10  # encoder frame shift (10 ms fbank frames)
        self.sos, self.eos, self.blank_id = cfg["u2_special_ids"]
        self.streamable = bool(enc.get("use_dynamic_chunk")) or int(enc.get("static_chunk_size") or 0) > 0

    def search(self, feats: np.ndarray, lens: np.ndarray, opts: SearchOptions) -> list[Hypothesis]:
        """One hypothesis per item of padded fbank (B, T, 80) (engine-specific)."""
        raise NotImplementedError

    def search_one(self, enc: Any, ctc: np.ndarray, opts: SearchOptions) -> Hypothesis:
        """The search of ``opts`` over one utterance's encoder output (1, T', d) and CTC log-probs (engine-specific)."""
        raise NotImplementedError

    def recognize(self, feats: np.ndarray, lens: np.ndarray, bias: Any = None, timestamps: bool = False,
                  search: SearchOptions = SearchOptions(), **_: Any) -> Recognition:
        """Features (B, T, 80) and lengths (B,) -> tokens and (CTC-peak) token times of the chosen search."""
        hyps = self.search(feats, lens, search)
        stamps = [word_pieces(h.times or [], self.frame_ms) for h in hyps] if timestamps else None
        return Recognition([h.tokens for h in hyps], token_stamps=stamps)

    def finish(self, cache: ChunkCache, opts: SearchOptions) -> Hypothesis:
        """The final result of a stream: the search of ``opts`` over everything it encoded."""
        return self.search_one(cache.enc[None], cache.ctc, opts)
