"""One WebSocket connection's state: offline, online and 2pass modes over FunASR's protocol (transport-agnostic).

The transport feeds ``on_text`` / ``on_audio`` in arrival order and delivers what ``send`` is given.
Streaming decodes go through the shared ``StreamBatcher``; offline passes (whole recordings, or
each VAD segment in 2pass) run in the bounded worker pool, in order per connection, so receiving
never waits for them.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Callable, Optional

import numpy as np
import soxr

from funasr.audio import AudioItem, TextItem
from funasr.errors import FunASRError
from funasr.models.u2.task import U2Task
from funasr.sentences import PUNC_MARKS, sentences_from_punctuation
from funasr.serve.batcher import StreamBatcher
from funasr.serve.models import Models
from funasr.serve.protocol import (
    ProtocolError, SessionConfig, is_end, parse_first, parse_json, pcm_samples, reply, stamp_sents, timestamp_string,
)

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
SAMPLES_PER_MS = 16
KEEP_BEFORE_SPEECH = SAMPLE_RATE  # audio kept while no segment is open: a VAD start lies at most ~0.5 s back


@dataclass(frozen=True)
class Limits:
    """Per-connection limits."""

    max_audio_s: float = 3600.0  # audio one connection may send in all
    idle_timeout_s: float = 30.0  # no message for this long: the connection is closed
    max_pending_results: int = 256  # results waiting for a client that does not read: then it is closed


def create_online_stream(task: Any, cfg: SessionConfig) -> Any:
    """A stream of the online model with the connection's settings. A U2 model decodes chunks of ``chunk_size[1]``
    × 60 ms in encoder frames and keeps ``encoder_chunk_look_back`` chunks of left context."""
    if isinstance(task, U2Task):
        frames = max(1, round(cfg.chunk_size[1] * 60 / task.net.frame_ms))
        return task.create_stream(decoding_chunk_size=frames, num_decoding_left_chunks=cfg.encoder_chunk_look_back)
    return task.create_stream(chunk_size=list(cfg.chunk_size), encoder_chunk_look_back=cfg.encoder_chunk_look_back,
                              decoder_chunk_look_back=cfg.decoder_chunk_look_back)


def punc_ids(text: str, units: list[str]) -> Optional[list[int]]:
    """Per unit, the punctuation id (1: none, 2..: ``PUNC_MARKS``) the punctuated ``text`` puts after it; None when
    the units are not all found in order (realtime punctuation's ``punc_array`` covers carried words, so it is not used)."""
    ids, pos = [], 0
    for unit in units:
        at = text.find(unit, pos)
        if at < 0:
            return None
        pos = at + len(unit)
        while text[pos : pos + 1] == " ":
            pos += 1
        mark = text[pos : pos + 1]
        ids.append(PUNC_MARKS.index(mark) + 2 if mark and mark in PUNC_MARKS else 1)
    return ids


class RecentAudio:
    """A connection's recent samples as the frames they came in (appending copies nothing already held)."""

    def __init__(self) -> None:
        self.pieces: deque[np.ndarray] = deque()
        self.start = 0  # sample index (since the utterance began) of the first piece's first sample

    def append(self, samples: np.ndarray) -> None:
        """Keep ``samples`` (the next samples of the utterance)."""
        self.pieces.append(samples)

    def get(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo:hi`` of the utterance (as far as they are still held)."""
        held = np.concatenate(self.pieces) if self.pieces else np.zeros(0, dtype=np.float32)
        return held[max(0, lo - self.start) : max(0, hi - self.start)].copy()

    def drop_before(self, index: int) -> None:
        """Forget the pieces that end at or before sample ``index``."""
        while self.pieces and self.start + len(self.pieces[0]) <= index:
            self.start += len(self.pieces.popleft())


class Connection:
    """FunASR's server side of one connection."""

    def __init__(self, models: Models, batcher: StreamBatcher, pool: Executor, limits: Limits,
                 send: Callable[[dict], None]) -> None:
        self.models, self.batcher, self.pool, self.limits, self.send = models, batcher, pool, limits, send
        self.config: Optional[SessionConfig] = None
        self.options: Any = None  # the offline pipeline's checked generate() options (hotwords)
        self.received = 0  # samples (at 16 kHz) received in all
        self.odd = b""  # a trailing byte of a frame with an odd length
        self.resampler: Any = None
        self.jobs: Optional[asyncio.Task] = None  # the last offline pass queued (passes run in order)
        self._reset()

    def _reset(self) -> None:
        """A new utterance: empty buffers and new streams."""
        self.frames: list[bytes] = []  # offline mode: what was received
        self.recent = RecentAudio()  # realtime: the audio an offline pass of a segment may still need
        self.utterance_samples = 0
        self.segment_start: Optional[int] = None  # ms of the open VAD segment
        self.vad_stream = self.asr_stream = self.punc_stream = None  # punc_stream: the realtime punctuation's cache
        self.online_pending = 0
        self.online_sent = 0  # characters of a cumulative (U2) stream's text already sent
        self.sentence = 0  # index of the current sentence (2pass)
        self.partials = 0  # partial results sent for it

    # ----- messages

    async def on_text(self, text: str) -> None:
        """A JSON text message: the first one configures the connection; ``is_speaking: false`` ends the audio."""
        message = parse_json(text)
        if self.config is None:
            self.config = parse_first(message)
            if self.config.mode not in self.models.modes:
                raise ProtocolError(f"mode={self.config.mode!r} is not served here: this server runs {', '.join(self.models.modes)}")
            try:
                self.options = self.models.offline.options({"hotword": self.config.hotwords, "sentence_timestamp": True})
            except FunASRError as e:
                raise ProtocolError(str(e)) from None
        if is_end(message):
            await self.end_of_audio()

    async def on_audio(self, data: bytes) -> None:
        """A binary frame: raw int16 PCM (or a container's bytes in offline mode with another ``wav_format``)."""
        if self.config is None:
            raise ProtocolError("binary data before the first JSON message; send the configuration "
                                "(e.g. {\"mode\": \"2pass\", \"wav_name\": \"x\", \"is_speaking\": true}) first")
        cfg = self.config
        if cfg.mode == "offline" and cfg.wav_format != "pcm":
            self._count(len(data) // 4)  # compressed: counted as if 16 kHz 16-bit stereo, so the byte budget holds
            self.frames.append(data)
            return
        data, self.odd = self.odd + data, b""
        if len(data) % 2:
            data, self.odd = data[:-1], data[-1:]
        samples = pcm_samples(data)
        if cfg.audio_fs != SAMPLE_RATE:
            if self.resampler is None:
                self.resampler = soxr.ResampleStream(cfg.audio_fs, SAMPLE_RATE, 1, dtype="float32")
            samples = self.resampler.resample_chunk(samples)
        self._count(len(samples))
        if cfg.mode == "offline":
            self.frames.append(samples.tobytes())
            return
        await self._stream(samples)

    def _count(self, samples: int) -> None:
        self.received += samples
        if self.received > self.limits.max_audio_s * SAMPLE_RATE:
            raise ProtocolError(f"audio longer than this server's {self.limits.max_audio_s:g} s per connection; "
                                "open a new connection for more")

    # ----- realtime modes

    async def _stream(self, samples: np.ndarray) -> None:
        cfg, m = self.config, self.models
        assert cfg is not None
        self.recent.append(samples)
        self.utterance_samples += len(samples)
        online = vad = None  # this frame's decodes, run at once (each task batches its own streams)
        if m.online is not None:
            if self.asr_stream is None:
                self.asr_stream = create_online_stream(m.online, cfg)
            self.asr_stream.accept_waveform(samples)
            self.online_pending += len(samples)
            if self.online_pending >= cfg.chunk_size[1] * 960:
                self.online_pending = 0
                online = self.batcher.decode(m.online, self.asr_stream)
        if cfg.mode == "2pass":
            if self.vad_stream is None:
                self.vad_stream = m.vad.create_stream(chunk_ms=cfg.vad_chunk_ms, streaming=True, options=m.vad_options)
            self.vad_stream.accept_waveform(samples)
            if len(self.vad_stream.pending) >= cfg.vad_chunk_ms * SAMPLES_PER_MS:
                vad = self.batcher.decode(m.vad, self.vad_stream)
        results = await asyncio.gather(*(job for job in (online, vad) if job is not None))
        if online is not None:  # the partial of this chunk before the segment the VAD may close with it
            await self._partial(results[0])
        if vad is not None:
            for beg, end in self._closed(results[-1]):
                self._segment(beg, end, final=False)
        if cfg.mode == "2pass":
            self._trim()

    async def _partial(self, result: Any, final: bool = False) -> None:
        """Send a streaming result (``2pass-online`` in 2pass, ``online`` in online mode)."""
        cfg = self.config
        assert cfg is not None
        text = self._new_text((result or {}).get("text", "") if isinstance(result, dict) else str(result or ""))
        if cfg.mode == "online":
            if text or final:
                self.send(reply("online", text, cfg.wav_name, final))
            return
        if text:
            self.send(reply("2pass-online", text, cfg.wav_name, False, slice_type=int(self.partials > 0), index=self.sentence))
            self.partials += 1

    def _new_text(self, text: str) -> str:
        """What a streaming result adds: a Paraformer's text is new tokens; a U2 model's is the whole best prefix so
        far, of which only the characters past those already sent go out (the protocol cannot take text back)."""
        if not isinstance(self.models.online, U2Task):
            return text
        new = text[self.online_sent :]
        self.online_sent = max(self.online_sent, len(text))
        return new

    def _closed(self, events: list) -> list[tuple[int, int]]:
        """VAD events (``[beg, -1]``, ``[-1, end]``, ``[beg, end]``) -> the segments they close."""
        closed = []
        for beg, end in events:
            if beg >= 0:
                self.segment_start = beg
            if end >= 0 and self.segment_start is not None:
                closed.append((self.segment_start, end))
                self.segment_start = None
        return closed

    def _segment(self, beg_ms: int, end_ms: int, final: bool) -> None:
        """Queue the offline pass of ``[beg_ms, end_ms]`` and start a new sentence (2pass)."""
        cfg = self.config
        assert cfg is not None
        audio = self.recent.get(beg_ms * SAMPLES_PER_MS, end_ms * SAMPLES_PER_MS)
        index = self.sentence
        self.sentence, self.partials = self.sentence + 1, 0
        self.asr_stream, self.online_pending, self.online_sent = None, 0, 0  # the next sentence streams from a fresh state
        if self.punc_stream is None and self.models.realtime_punc is not None:
            self.punc_stream = self.models.realtime_punc.create_stream()
        punc_stream = self.punc_stream
        self._queue(lambda: self._second_pass(audio, beg_ms, end_ms, index, final, punc_stream))

    def _second_pass(self, audio: np.ndarray, beg_ms: int, end_ms: int, index: int, final: bool,
                     punc_stream: Any) -> Optional[dict]:
        """Worker thread: offline ASR on one segment, punctuation (per-connection for realtime models), stamp_sents."""
        cfg, m = self.config, self.models
        assert cfg is not None
        extra = {"slice_type": 2, "start_time": beg_ms, "end_time": end_ms, "index": index}
        if not len(audio):
            return reply("2pass-offline", "", cfg.wav_name, final, **extra) if final else None
        result = m.asr([AudioItem(cfg.wav_name, audio)], self.options.stream if m.offline.streaming else self.options.asr)[0]
        text = result.get("text", "")
        stamps = [[b + beg_ms, e + beg_ms] for b, e in result.get("timestamp", [])]
        units = text.split()
        message = reply("2pass-offline", text, cfg.wav_name, final, **extra)
        if stamps:
            message["timestamp"] = timestamp_string(stamps)
        if text.strip() and (punc_stream is not None or m.punc is not None):
            if punc_stream is not None:  # continues the connection's earlier sentences; the input's end closes with 。
                punc_stream.accept_text(text)
                out = m.realtime_punc.decode_streams([punc_stream])[0]
                if final and out["text"] and out["text"][-1] not in PUNC_MARKS:
                    out["text"] += "。"
            else:
                out = m.punc([TextItem(cfg.wav_name, text)], self.options.punc)[0]
            message["text"] = out["text"]
            ids = punc_ids(out["text"], units)
            if stamps and ids is not None and len(stamps) == len(units):
                message["stamp_sents"] = stamp_sents(sentences_from_punctuation(ids, stamps, units))
        if not message["text"] and not final:
            return None
        return message

    def _trim(self) -> None:
        """Drop audio no segment can need any more."""
        keep_from = (self.segment_start * SAMPLES_PER_MS if self.segment_start is not None
                     else self.utterance_samples - KEEP_BEFORE_SPEECH)
        self.recent.drop_before(keep_from)

    # ----- end of audio

    async def end_of_audio(self) -> None:
        """``is_speaking: false``: finish the utterance; the last message of it has ``is_final: true``."""
        cfg, m = self.config, self.models
        assert cfg is not None
        if cfg.mode == "offline":
            frames, self.frames = self.frames, []
            self._queue(lambda: self._offline(frames))
        elif cfg.mode == "online":
            if self.asr_stream is not None:
                self.asr_stream.input_finished()
                await self._partial(await self.batcher.decode(m.online, self.asr_stream), final=True)
            else:
                self.send(reply("online", "", cfg.wav_name, True))
        else:
            closed = []
            if self.vad_stream is not None:
                self.vad_stream.input_finished()
                closed = self._closed(await self.batcher.decode(m.vad, self.vad_stream))
            if self.segment_start is not None:  # speech up to the end: its segment closes with the audio
                closed.append((self.segment_start, self.utterance_samples // SAMPLES_PER_MS))
            for i, (beg, end) in enumerate(closed):
                self._segment(beg, end, final=i == len(closed) - 1)
            if not closed:
                self._queue(lambda: reply("2pass-offline", "", cfg.wav_name, True))
        self._reset()

    def _offline(self, frames: list[bytes]) -> dict:
        """Worker thread: the whole pipeline on the received audio."""
        cfg, m = self.config, self.models
        assert cfg is not None
        if cfg.wav_format != "pcm":
            data: Any = b"".join(frames)
        else:
            data = np.frombuffer(b"".join(frames), dtype=np.float32)
        if not len(data):
            return reply("offline", "", cfg.wav_name, True)
        result = m.offline.results(*m.offline.sources(data), self.options).__next__()
        if "error" in result:
            return reply("offline", "", cfg.wav_name, True, error=result["error"])
        message = reply("offline", result.get("text", ""), cfg.wav_name, True)
        if result.get("timestamp"):
            message["timestamp"] = timestamp_string(result["timestamp"])
            if result.get("sentence_info"):
                message["stamp_sents"] = stamp_sents(result["sentence_info"])
        return message

    # ----- offline passes, in order

    def _queue(self, work: Callable[[], Optional[dict]]) -> None:
        """Run ``work`` in the worker pool after the connection's earlier passes; send what it returns."""
        previous = self.jobs

        async def run() -> None:
            if previous is not None:
                await asyncio.shield(previous)
            try:
                message = await asyncio.get_running_loop().run_in_executor(self.pool, work)
            except FunASRError as e:
                message = reply(self.config.mode if self.config else "offline", "", self.config.wav_name if self.config else "",
                                True, error=str(e))
            if message is not None:
                self.send(message)

        self.jobs = asyncio.get_running_loop().create_task(run())

    @property
    def busy(self) -> bool:
        """Whether offline passes are still queued or running."""
        return self.jobs is not None and not self.jobs.done()

    async def drain(self) -> None:
        """Wait for every queued offline pass (their messages are sent)."""
        if self.jobs is not None:
            await self.jobs

    def close(self) -> None:
        """The connection is gone: queued passes are dropped."""
        if self.jobs is not None:
            self.jobs.cancel()
