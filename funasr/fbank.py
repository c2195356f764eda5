"""Kaldi log-mel filterbank in numpy, whole blocks of frames at once (kaldi-native-fbank's numbers, to float precision).

kaldi-native-fbank computes one frame per C++ call (window, its own FFT, mel weights); here
every frame of a block is windowed, transformed by numpy's FFT and weighted by one matrix
product, several times faster. Settings are those of the frontends: no dither, DC offset
removed, pre-emphasis 0.97, power spectrum, mel filters from 20 Hz to Nyquist, log floored
at float32 epsilon, ``snip_edges`` framing (a frame depends on its own samples only).
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator, Sequence

import numpy as np
from threadpoolctl import OpenBLASController, ThreadpoolController

PREEMPH = 0.97
LOW_FREQ = 20.0
BLOCK_FRAMES = 256  # frames per FFT call: the block's arrays stay in the CPU cache (3x faster than 2000)
WINDOWS = ("hamming", "hanning", "povey", "rectangular", "blackman")


_blas_lock = threading.Lock()
_blas_users = 0
_blas_limit = None  # threadpoolctl's limiter while any fbank runs


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's BLAS on one thread while any fbank in the process runs, as it was set before once the last one ends.

    The mel product is small; on more threads OpenBLAS wakes its workers for it, and they spin on for a while
    after it (busy-waiting), taking a core from the engine that runs next (docs/benchmarks.md: decoding on 2
    threads of 2 cores was 10-25 % slower).
    """
    global _blas_users, _blas_limit
    with _blas_lock:
        if _blas_users == 0:
            _release_blas_control()
            _blas_limit = _controller().limit(limits=1, user_api="blas")
            _release_blas_control()
        _blas_users += 1
    try:
        yield
    finally:
        with _blas_lock:
            _blas_users -= 1
            if _blas_users == 0:
                _release_blas_control()
                _blas_limit.restore_original_limits()
                _release_blas_control()
                _blas_limit = None


def _release_blas_control() -> None:
    """Let the next thread set OpenBLAS's threads: threadpoolctl >= 3.8 lets one Python thread at a time do it (others'
    settings are ignored); here ``_blas_lock`` orders the setters instead. Older versions have no such role."""
    release = getattr(OpenBLASController, "clear_controlling_thread", None)
    if release is not None:
        release(force=True)


@lru_cache(maxsize=None)
def _controller() -> ThreadpoolController:
    """The process's thread pools (numpy's BLAS among them), looked up once."""
    return ThreadpoolController()


@lru_cache(maxsize=None)
def window_function(kind: str, length: int) -> np.ndarray:
    """Kaldi's analysis window of ``length`` samples: (length,) float64."""
    a = 2 * np.pi / (length - 1) if length > 1 else 0.0
    i = np.arange(length)
    if kind == "hamming":
        return 0.54 - 0.46 * np.cos(a * i)
    if kind == "hanning":
        return 0.5 - 0.5 * np.cos(a * i)
    if kind == "povey":
        return (0.5 - 0.5 * np.cos(a * i)) ** 0.85
    if kind == "blackman":
        return 0.42 - 0.5 * np.cos(a * i) + 0.08 * np.cos(2 * a * i)
    return np.ones(length)


def _mel(freq: np.ndarray) -> np.ndarray:
    return 1127.0 * np.log(1.0 + freq / np.float32(700.0))


@lru_cache(maxsize=None)
def mel_matrix(fs: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Kaldi's triangular mel filters over the first ``n_fft // 2`` FFT bins: (n_fft // 2, n_mels) float64."""
    f32 = np.float32
    mel_low, mel_high = _mel(f32(LOW_FREQ)), _mel(f32(0.5 * fs))
    delta = (mel_high - mel_low) / f32(n_mels + 1)
    mel = _mel(f32(fs / n_fft) * np.arange(n_fft // 2, dtype=f32))  # (n_fft/2,) mel of each bin's frequency
    left = mel_low + np.arange(n_mels, dtype=f32)[:, None] * delta  # (n_mels, 1)
    center, right = left + delta, left + 2 * delta
    up, down = (mel - left) / (center - left), (right - mel) / (right - center)
    weights = np.where(mel <= center, up, down) * ((mel > left) & (mel < right))
    return weights.astype(np.float64).T


@dataclass
class Fbank:
    """One fbank setting: frames of ``length`` samples every ``shift``, ``n_mels`` log-mel energies each."""

    fs: int
    length: int
    shift: int
    n_mels: int
    window: str = "hamming"
    n_fft: int = field(init=False)

    def __post_init__(self) -> None:
        self.n_fft = 1 << max(0, int(self.length - 1).bit_length())
        self._window = window_function(self.window, self.length)
        self._mel = mel_matrix(self.fs, self.n_fft, self.n_mels)

    def num_frames(self, n_samples: int) -> int:
        """Frames in ``n_samples`` samples (snip_edges: whole frames only)."""
        return 0 if n_samples < self.length else 1 + (n_samples - self.length) // self.shift

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """Log-mel frames of int16-scale ``samples``: (N,) -> (num_frames(N), n_mels) float32."""
        return self.many([samples])[0]

    def many(self, signals: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``self(x)`` of each signal, all frames in one pass (many streams' chunks cost about one call)."""
        counts = [self.num_frames(len(x)) for x in signals]
        out = np.empty((sum(counts), self.n_mels), dtype=np.float32)
        if len(out):
            used = [np.asarray(x[: self.length + (n - 1) * self.shift], dtype=np.float64) for x, n in zip(signals, counts) if n]
            windows = np.lib.stride_tricks.sliding_window_view(np.concatenate(used) if len(used) > 1 else used[0], self.length)
            if len(used) == 1:  # evenly spaced: a view
                frames = windows[:: self.shift]
            else:  # each signal's frames, gathered
                offsets = np.cumsum([0] + [len(u) for u in used[:-1]])
                frames = windows[np.concatenate([o + np.arange(n) * self.shift for o, n in zip(offsets, [n for n in counts if n])])]
            with one_blas_thread():
                self._energies(frames, out)
        return np.split(out, np.cumsum(counts[:-1]))

    def _energies(self, frames: np.ndarray, out: np.ndarray) -> None:
        """Log-mel energies of ``frames`` (T, length) float64 into ``out`` (T, n_mels)."""
        padded = np.zeros((min(len(frames), BLOCK_FRAMES), self.n_fft))  # zero-padded FFT input, reused per block
        for start in range(0, len(frames), BLOCK_FRAMES):
            stop = min(len(frames), start + BLOCK_FRAMES)
            block_frames = frames[start:stop]  # (b, length)
            means = block_frames.mean(axis=1, keepdims=True)
            # Per frame: y = x - mean, then y[i] -= 0.97 y[i-1] (y[0] -= 0.97 y[0]).
            block = padded[: stop - start, : self.length]
            np.subtract(block_frames[:, 1:], PREEMPH * block_frames[:, :-1], out=block[:, 1:])
            block[:, 1:] -= (1 - PREEMPH) * means
            block[:, :1] = (1 - PREEMPH) * (block_frames[:, :1] - means)
            block *= self._window
            spec = np.fft.rfft(padded[: stop - start])[:, : self.n_fft // 2]
            energies = (spec.real**2 + spec.imag**2) @ self._mel  # (b, n_mels)
            np.log(np.maximum(energies, np.finfo(np.float32).eps), out=energies)
            out[start:stop] = energies


@dataclass
class FbankStream:
    """Fbank over audio arriving in pieces: the samples of the frame not yet complete are kept for the next piece."""

    fbank: Fbank
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """The frames completed by ``samples`` (int16 scale): (T, n_mels); equal to those of the whole signal."""
        return FbankStream.accept_many([self], [samples])[0]

    @staticmethod
    def accept_many(streams: Sequence["FbankStream"], pieces: Sequence[np.ndarray]) -> list[np.ndarray]:
        """``stream.accept(piece)`` of each stream (all with the same ``Fbank``), every frame in one pass."""
        bufs = [np.concatenate([s.pending, np.asarray(p, dtype=np.float32)]) if len(s.pending) else p
                for s, p in zip(streams, pieces)]
        frames = streams[0].fbank.many(bufs) if streams else []
        for s, buf, f in zip(streams, bufs, frames):
            s.pending = np.array(buf[len(f) * s.fbank.shift :], dtype=np.float32)
        return frames
