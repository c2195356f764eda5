"""Kaldi log-mel filterbank in numpy, whole blocks of frames at once (kaldi-native-fbank's numbers, to float precision).

kaldi-native-fbank computes one frame per C++ call (window, its own FFT, mel weights); here
every frame of a block is windowed, transformed by numpy's FFT and weighted by one matrix
product, several times faster. Settings are those of the frontends: no dither, DC offset
removed, pre-emphasis 0.97, power spectrum, mel filters from 20 Hz to Nyquist, log floored
at float32 epsilon, ``snip_edges`` framing (a frame depends on its own samples only).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

PREEMPH = 0.97
LOW_FREQ = 20.0
BLOCK_FRAMES = 256  # frames per FFT call: the block's arrays stay in the CPU cache (3x faster than 2000)
WINDOWS = ("hamming", "hanning", "povey", "rectangular", "blackman")


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
        x = np.asarray(samples, dtype=np.float64)
        n = self.num_frames(len(x))
        out = np.empty((n, self.n_mels), dtype=np.float32)
        if not n:
            return out
        # Per frame: y = x - mean, then y[i] -= 0.97 y[i-1] (y[0] -= 0.97 y[0]). Both are linear, so
        # y = v - 0.03 mean, where v is the whole signal pre-emphasised once, with v[0] = 0.03 x[0].
        emph = np.empty_like(x)
        emph[1:] = x[1:] - PREEMPH * x[:-1]
        starts = np.arange(n) * self.shift
        means = np.lib.stride_tricks.sliding_window_view(x, self.length)[:: self.shift].mean(axis=1)  # (n,)
        frames = np.lib.stride_tricks.sliding_window_view(emph, self.length)[:: self.shift]
        padded = np.zeros((min(n, BLOCK_FRAMES), self.n_fft))  # zero-padded FFT input, reused per block
        for start in range(0, n, BLOCK_FRAMES):
            stop = min(n, start + BLOCK_FRAMES)
            block = padded[: stop - start, : self.length]  # (b, length)
            np.subtract(frames[start:stop], ((1 - PREEMPH) * means[start:stop])[:, None], out=block)
            block[:, 0] = (1 - PREEMPH) * (x[starts[start:stop]] - means[start:stop])
            block *= self._window
            spec = np.fft.rfft(padded[: stop - start])[:, : self.n_fft // 2]
            energies = (spec.real**2 + spec.imag**2) @ self._mel  # (b, n_mels)
            np.log(np.maximum(energies, np.finfo(np.float32).eps), out=energies)
            out[start:stop] = energies
        return out


@dataclass
class FbankStream:
    """Fbank over audio arriving in pieces: the samples of the frame not yet complete are kept for the next piece."""

    fbank: Fbank
    pending: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))

    def accept(self, samples: np.ndarray) -> np.ndarray:
        """The frames completed by ``samples`` (int16 scale): (T, n_mels); equal to those of the whole signal."""
        buf = np.concatenate([self.pending, np.asarray(samples, dtype=np.float32)]) if len(self.pending) else samples
        frames = self.fbank(buf)
        self.pending = np.array(buf[len(frames) * self.fbank.shift :], dtype=np.float32)
        return frames
