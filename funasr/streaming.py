"""Stream objects: all the state of one audio stream (one connection), so tasks and models stay stateless.

The pattern: ``stream = task.create_stream(...)``, ``stream.accept_waveform(samples)`` as audio
arrives, ``stream.input_finished()`` at the end, and ``task.decode_stream(stream)`` (or
``task.decode_streams([...])`` for many) returns what is new since the last call.  FunASR's
``generate(..., cache={})`` is an adapter: the dict holds the typed stream under ``CACHE_KEY``.
Numpy only; the network state a stream carries is whatever its engine returned.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar

import numpy as np

from funasr.errors import FunASRError, OptionError
from funasr.frontend import FeatureStream
from funasr.models.fsmn_vad.segmenter import ChunkedSegmenter, VADOptions
from funasr.models.paraformer_streaming.chunks import ChunkSettings

CACHE_KEY = "stream"  # where a FunASR ``cache`` dict keeps its typed stream
SAMPLE_RATE = 16000


class Stream:
    """What every stream has: audio received but not decoded yet, and whether the input has ended."""

    pending: np.ndarray  # (N,) float32 in [-1, 1]
    finished: bool  # ``input_finished`` was called: the next decode processes the rest and closes the stream

    def accept_waveform(self, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
        """Append 16 kHz float samples in [-1, 1] to the audio waiting to be decoded."""
        if sample_rate != SAMPLE_RATE:
            raise FunASRError(f"accept_waveform(sample_rate={sample_rate}): streams take {SAMPLE_RATE} Hz audio; resample first")
        if self.finished:
            raise FunASRError("accept_waveform after input_finished(): create a new stream for new audio")
        samples = np.asarray(samples, dtype=np.float32).reshape(-1)
        self.pending = np.concatenate([self.pending, samples]) if len(self.pending) else samples

    def input_finished(self) -> None:
        """No more audio: the next decode processes the rest and ends the stream."""
        self.finished = True

    def take_pending(self, stride: int) -> list[np.ndarray]:
        """Whole ``stride``-sample pieces of the pending audio (plus the rest, maybe empty, once finished)."""
        n = len(self.pending) // stride + int(self.finished)
        pieces = [self.pending[i * stride : (i + 1) * stride] for i in range(n)]
        self.pending = self.pending[n * stride :].copy() if not self.finished else np.zeros(0, dtype=np.float32)
        return pieces


@dataclass
class VADStream(Stream):
    """One stream through the VAD: audio is cut into ``chunk_ms`` chunks, each through frontend, network, segmenter."""

    options: VADOptions  # the segmenter's settings, fixed at creation
    features: FeatureStream  # the online frontend's state
    segmenter: ChunkedSegmenter  # the segmenter state machine and its chunk rules
    chunk_ms: int = 200  # the reference decodes (and schedules dynamic silence) per chunk of this length
    net_cache: Any = None  # the network's memory per FSMN layer, as its engine returned it; None: no history
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    finished: bool = False
    closed: bool = False  # the final chunk was decoded: nothing more will come out

    @property
    def streaming(self) -> bool:
        """Events ``[beg, -1]`` / ``[-1, end]`` as they happen (else whole ``[beg, end]`` segments)."""
        return self.segmenter.streaming


@dataclass
class ParaformerStream(Stream):
    """One stream through the streaming Paraformer: cut into ``settings.stride``-sample chunks, each decoded over a window.

    Holds everything the decoding of the next chunk needs; the task and its engine hold nothing.
    """

    settings: ChunkSettings  # chunk size and look-back, fixed at creation
    features: FeatureStream  # the online frontend's state
    overlap: np.ndarray  # (c0 + c2, 560) float32: the last window frames, scaled and position-encoded (zeros at the start)
    cif_hidden: np.ndarray  # (D,) float32: CIF frames accumulated since the last token, divided by their weight
    net_cache: Any  # the engine's memory: encoder look-back keys/values, decoder FSMN inputs and cross-attention keys/values
    key: str = "stream"  # the ``key`` of its results
    frames: int = 0  # LFR frames received: the position encoding continues from here
    cif_alpha: np.float32 = np.float32(0.0)  # CIF weight accumulated since the last token
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    finished: bool = False
    closed: bool = False  # the final chunk was decoded: nothing more will come out


S = TypeVar("S", bound=Stream)


def stream_in_cache(cache: dict, kind: type[S], create: Callable[[], S]) -> S:
    """The ``kind`` stream a FunASR ``cache`` dict holds, created (and stored) on first use."""
    if not isinstance(cache, dict):
        raise OptionError(f"cache={cache!r}: pass a dict (empty for a new stream, then the same dict on every call)")
    stream = cache.get(CACHE_KEY)
    if stream is None:
        if cache:
            raise OptionError(f"cache has keys {sorted(map(str, cache))}: pass an empty dict to start a stream")
        stream = cache[CACHE_KEY] = create()
    elif not isinstance(stream, kind):
        raise OptionError(f"cache holds a {type(stream).__name__}, not a {kind.__name__}: use one cache dict per model")
    return stream


@dataclass
class PuncStream:
    """One text stream through realtime punctuation: the words carried to the next call, and text not punctuated yet."""

    pre_text: list[str] = field(default_factory=list)  # FunASR's cache["pre_text"]: the words after the last sentence end
    pending: list[str] = field(default_factory=list)  # pieces accepted since the last decode

    def accept_text(self, text: str) -> None:
        """Append a piece of text (e.g. an ASR result) to what the next decode punctuates."""
        if not isinstance(text, str):
            raise FunASRError(f"accept_text({text!r}): pass a str")
        self.pending.append(text)

    def take_pending(self) -> str:
        """The pieces accepted since the last decode, joined by spaces (and forgotten)."""
        text, self.pending = " ".join(self.pending), []
        return text
