"""U2Task: the ASR task of WeNet models (torch-free): WeNet's text (units joined, ``▁`` as a space), CTC
timestamps, and streams decoded chunk by chunk (partial results from CTC prefix beam search, the
chosen search, attention rescoring by default, once the input is finished)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from funasr.engines import Recognition
from funasr.errors import OptionError
from funasr.frontend import FeatureStream
from funasr.options import SearchOptions
from funasr.search import Hypothesis, PrefixBeam, word_pieces
from funasr.streaming import Stream
from funasr.tasks.asr import ASRTask

DROPPED = frozenset(("<unk>", "<context>", "</context>"))  # units WeNet's runtime removes from the text
WORD_START = "\u2581"  # ▁: a BPE unit that begins a word


def join_units(units: list[str]) -> str:
    """WeNet's runtime text: the units joined, ``▁`` turned into single spaces, trimmed."""
    return re.sub(" +", " ", "".join(units).replace(WORD_START, " ")).strip()


@dataclass
class U2Stream(Stream):
    """One stream through a U2 model: fbank frames cut into chunk windows, the encoder caches, the CTC prefix beam."""

    search: SearchOptions  # chunk size, left chunks and the final search, fixed at creation
    features: FeatureStream  # the online fbank's state
    beam: PrefixBeam  # the CTC prefix beam search over every frame so far (partial results)
    key: str = "stream"
    frames: np.ndarray = field(default_factory=lambda: np.zeros((0, 80), dtype=np.float32))  # fbank from the next window on
    net_cache: Any = None  # the engine's memory (encoder caches and output so far); None: nothing encoded
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    finished: bool = False
    closed: bool = False  # the final result was given: nothing more will come out


class U2Task(ASRTask):
    """ASRTask with WeNet's text assembly, per-token timestamps from the CTC peaks, and streams."""

    def result(self, key: str, rec: Recognition, j: int, with_ts: bool) -> dict:
        """Result dict of batch item ``j``."""
        stamps = rec.token_stamps[j] if with_ts and rec.token_stamps is not None else None
        return self.hypothesis_result(key, rec.token_ids[j], stamps)

    def hypothesis_result(self, key: str, tokens: list[int], stamps: Optional[list[list[int]]]) -> dict:
        """``{"key", "text"}`` (plus ``"timestamp"`` when ``stamps`` are given) of token ids."""
        units = self.tokenizer.ids2tokens(tokens)
        keep = [i for i, u in enumerate(units) if u not in DROPPED]
        out: dict[str, Any] = {"key": key, "text": join_units([units[i] for i in keep])}
        if stamps is not None:
            out["timestamp"] = [stamps[i] for i in keep]
        return out

    def create_stream(self, decoding_chunk_size: int = 16, key: str = "stream", **search: Any) -> U2Stream:
        """A new stream decoded ``decoding_chunk_size`` encoder frames at a time; ``search``: the other
        ``SearchOptions`` (num_decoding_left_chunks, decoding_method, beam_size, ctc_weight, reverse_weight)."""
        opts = SearchOptions.parse({**search, "decoding_chunk_size": decoding_chunk_size})
        if opts.decoding_chunk_size < 0:
            raise OptionError(f"decoding_chunk_size={decoding_chunk_size!r}: a stream needs a chunk size > 0 (e.g. 16)")
        if not self.net.streamable:
            raise OptionError(f"{self.cfg.get('model_dir')} was trained without chunks (use_dynamic_chunk / static_chunk_size): "
                              "it cannot decode streams; run whole utterances with generate()")
        return U2Stream(opts, self.frontend.create_stream(), PrefixBeam(opts.beam(), self.net.blank_id), key,
                        np.zeros((0, self.frontend.output_size()), dtype=np.float32))

    def decode_stream(self, stream: U2Stream) -> dict:
        """``decode_streams`` of one stream."""
        return self.decode_streams([stream])[0]

    def decode_streams(self, streams: list[U2Stream]) -> list[dict]:
        """Encode every whole chunk waiting in each stream (chunks of different streams in one batch per round).

        Each result is ``{"key", "text", "is_final"}``: the stream's best CTC prefix so far, or, once
        its input is finished, the final search's text with ``"timestamp"``.
        """
        windows = [[] if s.closed else self.windows(s) for s in streams]
        for r in range(max((len(w) for w in windows), default=0)):
            active = [i for i, w in enumerate(windows) if r < len(w)]
            caches = self.net.stream_chunks(
                [windows[i][r] for i in active], [streams[i].net_cache for i in active],
                [streams[i].search.decoding_chunk_size * streams[i].search.num_decoding_left_chunks for i in active],
            )
            for i, cache in zip(active, caches):
                s = streams[i]
                s.beam.extend(cache.ctc[s.beam.frames :])
                s.net_cache = cache
        out = []
        for s in streams:
            if s.finished and not s.closed:
                s.closed = True
                hyp = self.net.finish(s.net_cache, s.search) if s.net_cache is not None else Hypothesis([], None, [])
                stamps = word_pieces(hyp.times or [], self.net.frame_ms) if hyp.times is not None else None
                out.append({**self.hypothesis_result(s.key, hyp.tokens, stamps), "is_final": True})
            else:
                out.append({**self.hypothesis_result(s.key, s.beam.nbest()[0].tokens, None), "is_final": s.closed})
        return out

    def windows(self, stream: U2Stream) -> list[np.ndarray]:
        """The stream's new audio as fbank, cut into the encoder windows that are complete (all the rest once finished)."""
        samples, stream.pending = stream.pending, np.zeros(0, dtype=np.float32)
        frames = self.frontend.accept(samples, stream.features, stream.finished)
        frames = np.concatenate([stream.frames, frames])
        chunk, rate, context = stream.search.decoding_chunk_size, self.net.rate, self.net.right_context + 1
        size, stride = (chunk - 1) * rate + context, chunk * rate
        need = context if stream.finished else size  # at the end, a short window still makes frames
        out, pos = [], 0
        while len(frames) - pos >= need:
            out.append(frames[pos : pos + size])
            pos += stride
        stream.frames = frames[pos:]
        return out
