"""FSMN-VAD segmenter: per-frame silence posteriors -> speech segments in ms (numpy only).

FunASR's E2E-VAD decision logic: each 10 ms frame is speech or silence
from its posterior and energy; a 20-frame window turns frame states into onsets and offsets;
a state machine opens a segment (with look-back), closes it after enough trailing silence (with
look-ahead), at ``max_single_segment_time`` or at the end of the audio.  ``ChunkedSegmenter`` adds the
chunk loop's bookkeeping: frame energies from the waveform, the "dynamic silence" schedule and
FunASR's offline (``[beg, end]``) and streaming (``[beg, -1]`` / ``[-1, end]``) outputs.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

# (accumulated speech in ms, end-of-speech silence in ms): the first row whose limit is not
# exceeded applies (FunASR's offline default since funasr 1.4).
DEFAULT_SILENCE_SCHEDULE: tuple[tuple[float, int], ...] = (
    (10000, 2000),
    (20000, 1000),
    (30000, 800),
    (40000, 600),
    (50000, 400),
    (60000, 200),
    (float("inf"), 100),
)
DYNAMIC_SPEECH_NOISE_THRES = 0.5  # the schedule also relaxes the speech decision to this

# Options that may be given per generate() call (they apply to that call only).
CALL_OPTIONS = ("max_end_silence_time", "speech_noise_thres", "dynamic_silence", "silence_schedule")

# Window detector transitions.
SIL2SIL, SIL2SPEECH, SPEECH2SPEECH, SPEECH2SIL = range(4)
# State machine states.
START_NOT_DETECTED, IN_SPEECH, END_DETECTED = range(3)


@dataclass(frozen=True)
class VADOptions:
    """The segmenter's settings: ``model_conf`` of config.yaml, plus the dynamic-silence switch."""

    sample_rate: int = 16000
    detect_mode: int = 1  # 1: many utterances; 0: stop after the first (or after max_start_silence_time)
    max_end_silence_time: int = 800
    max_start_silence_time: int = 3000
    window_size_ms: int = 200
    sil_to_speech_time_thres: int = 150
    speech_to_sil_time_thres: int = 150
    speech_2_noise_ratio: float = 1.0
    do_extend: int = 1
    lookback_time_start_point: int = 200
    lookahead_time_end_point: int = 100
    max_single_segment_time: int = 60000
    snr_thres: float = -100.0
    noise_frame_num_used_for_snr: int = 100
    decibel_thres: float = -100.0
    speech_noise_thres: float = 0.6
    fe_prior_thres: float = 1e-4
    sil_pdf_ids: tuple[int, ...] = (0,)
    frame_in_ms: int = 10
    frame_length_ms: int = 25
    dynamic_silence: bool = True
    silence_schedule: tuple[tuple[float, int], ...] = DEFAULT_SILENCE_SCHEDULE

    @classmethod
    def from_config(cls, cfg: dict[str, Any]) -> "VADOptions":
        """Options from a resolved config: ``model_conf`` overridden by same-named top-level keys (user kwargs)."""
        names = {f.name for f in dataclasses.fields(cls)}
        conf = {k: v for k, v in (cfg.get("model_conf") or {}).items() if k in names}
        conf.update({k: v for k, v in cfg.items() if k in names})
        if "dynamic_silence" not in cfg:  # a fixed end silence asked for by the user turns the schedule off
            conf["dynamic_silence"] = "max_end_silence_time" not in cfg
        return cls._make(conf)

    def for_call(self, **kwargs: Any) -> "VADOptions":
        """These options with a generate() call's ``CALL_OPTIONS`` applied (None means not given)."""
        given = {k: kwargs[k] for k in CALL_OPTIONS if kwargs.get(k) is not None}
        if "max_end_silence_time" in given and "dynamic_silence" not in given:
            given["dynamic_silence"] = False
        return self._make({**dataclasses.asdict(self), **given}) if given else self

    @classmethod
    def _make(cls, conf: dict[str, Any]) -> "VADOptions":
        conf = dict(conf)
        if "sil_pdf_ids" in conf:
            conf["sil_pdf_ids"] = tuple(int(i) for i in conf["sil_pdf_ids"])
        if "silence_schedule" in conf:
            conf["silence_schedule"] = tuple((float(a), int(b)) for a, b in conf["silence_schedule"])
        if "dynamic_silence" in conf:
            conf["dynamic_silence"] = bool(conf["dynamic_silence"])
        return cls(**conf)

    @property
    def frame_shift_samples(self) -> int:
        """Samples between frame starts (160)."""
        return int(self.frame_in_ms * self.sample_rate / 1000)

    @property
    def frame_length_samples(self) -> int:
        """Samples per frame (400)."""
        return int(self.frame_length_ms * self.sample_rate / 1000)


def frame_decibels(samples: np.ndarray, n_frames: int, frame_length: int, frame_shift: int) -> np.ndarray:
    """``10 log10(sum x^2 + 1e-6)`` of the first ``n_frames`` frames of ``samples``."""
    if n_frames <= 0:
        return np.zeros(0, dtype=np.float64)
    frames = sliding_window_view(samples[: (n_frames - 1) * frame_shift + frame_length], frame_length)[::frame_shift]
    return 10.0 * np.log10(np.einsum("ij,ij->i", frames, frames).astype(np.float64) + 1e-6)


class Segmenter:
    """The frame-level state machine; feed it frames with ``accept`` and collect segments with ``take``."""

    def __init__(self, opts: VADOptions) -> None:
        self.opts = opts
        frame_ms = opts.frame_in_ms
        self.win_size = int(opts.window_size_ms / frame_ms)
        self.sil2speech_frames = int(opts.sil_to_speech_time_thres / frame_ms)
        self.speech2sil_frames = int(opts.speech_to_sil_time_thres / frame_ms)
        self.start_latency = self.win_size + (int(opts.lookback_time_start_point / frame_ms) if opts.do_extend else 0)
        self.lookahead_frames = int(opts.lookahead_time_end_point / frame_ms)
        self.max_segment_frames = opts.max_single_segment_time / frame_ms
        self.end_silence_ms = opts.max_end_silence_time - opts.speech_to_sil_time_thres
        self.speech_noise_thres = opts.speech_noise_thres

        self.frames = 0  # frames seen so far; the next frame's index
        self.buf_start = 0  # first frame not yet given to a segment or declared silence
        self.n_ends = 0  # segment ends so far (including the no-speech end at the last frame)
        self.noise_db = -100.0  # running average energy of non-speech frames (for the SNR)
        self.closed: list[list[int]] = []  # finished segments not taken yet, [beg_ms, end_ms]
        self.open: Optional[list[int]] = None  # the segment in progress, [beg_ms, end_ms so far]
        self.open_reported = False  # streaming: the open segment's start was already output
        self._reset()

    def _reset(self) -> None:
        """Back to searching for a start point (after each end in multiple-utterance mode)."""
        self.state = START_NOT_DETECTED
        self.silence_count = 0  # consecutive Sil2Sil frames
        self.last_speech = 0  # latest frame given to the open segment
        self.seg_start = -1  # the open segment's first frame
        self.window = [0] * self.win_size
        self.win_pos = 0
        self.win_sum = 0
        self.win_speech = False

    def set_thresholds(self, end_silence_ms: float, speech_noise_thres: float) -> None:
        """Counted trailing silence (ms) that ends a segment, and the speech-decision margin."""
        self.end_silence_ms = end_silence_ms
        self.speech_noise_thres = speech_noise_thres

    @property
    def in_speech(self) -> bool:
        """True while a segment is open."""
        return self.state == IN_SPEECH

    def _frame_candidates(self, p_sil: np.ndarray, decibel: np.ndarray) -> tuple[list[bool], list[bool]]:
        """Per frame: speech by posterior and energy (before the SNR test), and noise (updates the SNR floor)."""
        o = self.opts
        p = p_sil.astype(np.float64)
        prob_speech = (1.0 - p) >= p**o.speech_2_noise_ratio + self.speech_noise_thres
        loud = decibel >= o.decibel_thres
        speech = prob_speech & loud if o.fe_prior_thres < 1.0 else np.zeros_like(loud)
        return speech.tolist(), (~prob_speech & loud).tolist()

    def accept(self, p_sil: np.ndarray, decibel: np.ndarray, is_final: bool) -> None:
        """Run the next frames (silence posterior and energy per frame); ``is_final`` closes the stream."""
        speech, noise = self._frame_candidates(p_sil, decibel)
        db = decibel.tolist()
        o = self.opts
        snr_thres, n_noise = o.snr_thres, o.noise_frame_num_used_for_snr
        last = len(speech) - 1
        for i in range(len(speech)):
            if speech[i]:
                is_speech = db[i] - self.noise_db >= snr_thres
            else:
                is_speech = False
                if noise[i]:
                    self.noise_db = db[i] if self.noise_db < -99.9 else (db[i] + self.noise_db * (n_noise - 1)) / n_noise
            if self.state != END_DETECTED:
                self._frame(self.frames, is_speech, is_final and i == last)
            self.frames += 1
        if is_final and len(speech) == 0 and self.state == IN_SPEECH:
            self._end(self.frames - 1)  # the final chunk brought no frames: close at the last one seen

    def _window(self, is_speech: bool) -> int:
        """Push one frame state into the window; the resulting transition."""
        s = 1 if is_speech else 0
        self.win_sum += s - self.window[self.win_pos]
        self.window[self.win_pos] = s
        self.win_pos = (self.win_pos + 1) % self.win_size
        if self.win_speech:
            if self.win_sum <= self.speech2sil_frames:
                self.win_speech = False
                return SPEECH2SIL
            return SPEECH2SPEECH
        if self.win_sum >= self.sil2speech_frames:
            self.win_speech = True
            return SIL2SPEECH
        return SIL2SIL

    def _frame(self, t: int, is_speech: bool, is_last: bool) -> None:
        """One frame through the window detector and the state machine."""
        change = self._window(is_speech)
        if change == SIL2SIL:
            self.silence_count += 1
            if self.state == IN_SPEECH:
                self._silence_in_speech(t, is_last)
            elif (
                self.opts.detect_mode == 0 and self.silence_count * self.opts.frame_in_ms > self.opts.max_start_silence_time
            ) or (is_last and self.n_ends == 0):
                self.n_ends += 1  # no speech at all: FunASR's "fake" start/end, never output
                self.state = END_DETECTED
            elif t >= self.start_latency:
                self.buf_start = max(self.buf_start, t - self.start_latency)
        else:
            self.silence_count = 0
            if self.state == START_NOT_DETECTED:
                if change == SIL2SPEECH:
                    self._start(t)
            elif self.state == IN_SPEECH:
                if change == SIL2SPEECH:
                    self._extend(t - 1)
                if t - self.seg_start + 1 > self.max_segment_frames:
                    self._end(t)
                elif is_last:
                    self._end(t)
                else:
                    self._extend(t)
        if self.state == END_DETECTED and self.opts.detect_mode == 1:
            self._reset()

    def _silence_in_speech(self, t: int, is_last: bool) -> None:
        """A Sil2Sil frame inside a segment: end it, or keep up to the look-ahead frames."""
        frame_ms = self.opts.frame_in_ms
        if self.silence_count * frame_ms >= self.end_silence_ms:
            lookback = int(self.end_silence_ms / frame_ms)
            if self.opts.do_extend:
                lookback = max(0, lookback - self.lookahead_frames - 1)
            self._end(t - lookback)
        elif t - self.seg_start + 1 > self.max_segment_frames:
            self._end(t)
        elif is_last:
            self._end(t)
        elif self.opts.do_extend and self.silence_count <= self.lookahead_frames:
            self._extend(t)

    def _start(self, t: int) -> None:
        """Open a segment detected at frame ``t``, reaching back by the start latency."""
        start = max(self.buf_start, t - self.start_latency)
        self.seg_start = start
        self.open = [start * self.opts.frame_in_ms, (start + 1) * self.opts.frame_in_ms]
        self.buf_start = start + 1
        self.state = IN_SPEECH
        if start < t:
            self._extend(t)

    def _extend(self, t: int) -> None:
        """Give the frames up to ``t`` to the open segment."""
        if t > self.last_speech:
            self.last_speech = t
            self.buf_start = max(self.buf_start, t) + 1
            self.open[1] = (t + 1) * self.opts.frame_in_ms

    def _end(self, t: int) -> None:
        """Close the open segment with frame ``t`` as its last frame."""
        self._extend(t - 1)
        self.buf_start = max(self.buf_start, t) + 1
        self.open[1] = (t + 1) * self.opts.frame_in_ms
        self.closed.append(self.open)
        self.open = None
        self.n_ends += 1
        self.state = END_DETECTED

    def take(self, streaming: bool, is_final: bool) -> list[list[int]]:
        """New output: offline ``[beg, end]`` (the open one too when final); streaming adds ``[beg, -1]``/``[-1, end]``."""
        out = []
        for seg in self.closed:
            out.append([-1, seg[1]] if self.open_reported else seg)
            self.open_reported = False
        self.closed = []
        if self.open is not None:
            if streaming and not self.open_reported:
                out.append([self.open[0], -1])
                self.open_reported = True
            elif not streaming and is_final:
                out.append(list(self.open))
        return out


class ChunkedSegmenter:
    """One audio stream through the segmenter, chunk by chunk, with FunASR's chunk-level rules."""

    def __init__(self, opts: VADOptions, streaming: bool) -> None:
        self.opts = opts
        self.streaming = streaming
        self.segmenter = Segmenter(opts)
        self.samples = np.zeros(0, dtype=np.float32)  # waveform from the next frame's first sample on
        self.accumulated_ms = 0.0  # dynamic silence: speech time since the last output
        self.was_in_speech = False

    def begin_chunk(self, chunk_ms: float) -> None:
        """Before each chunk: pick the end-silence threshold from the dynamic schedule (when on)."""
        if not self.opts.dynamic_silence:
            return
        if self.segmenter.in_speech or self.was_in_speech:
            self.accumulated_ms += chunk_ms
            self.was_in_speech = True
        for limit_ms, silence_ms in self.opts.silence_schedule:
            if self.accumulated_ms <= limit_ms:
                end_ms = max(silence_ms - self.opts.speech_to_sil_time_thres, 0)
                self.segmenter.set_thresholds(end_ms, DYNAMIC_SPEECH_NOISE_THRES)
                break

    def accept(self, samples: np.ndarray, p_sil: np.ndarray, is_final: bool) -> list[list[int]]:
        """The chunk's samples and the silence posteriors of the frames it completed -> new segments/events."""
        o = self.opts
        self.samples = np.concatenate([self.samples, np.asarray(samples, dtype=np.float32)])
        n = len(p_sil)
        decibel = frame_decibels(self.samples, n, o.frame_length_samples, o.frame_shift_samples)
        self.samples = self.samples[n * o.frame_shift_samples :]
        self.segmenter.accept(p_sil, decibel, is_final)
        out = self.segmenter.take(self.streaming, is_final)
        if out and self.opts.dynamic_silence:
            self.accumulated_ms = 0.0
            self.was_in_speech = False
        return out
