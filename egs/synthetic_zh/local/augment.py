"""Waveform augmentation of the synthetic corpus: resampling, speed, noise at an SNR, reverberation, gain."""
from __future__ import annotations

import numpy as np
import soxr


def resample(audio: np.ndarray, src: int, dst: int) -> np.ndarray:
    """``audio`` at ``src`` Hz resampled to ``dst`` Hz (soxr, deterministic)."""
    if src == dst:
        return audio.astype(np.float32)
    return soxr.resample(audio.astype(np.float32), src, dst, quality="HQ").astype(np.float32)


def speed(audio: np.ndarray, factor: float, rate: int) -> np.ndarray:
    """Kaldi-style speed perturbation: played ``factor`` times faster (tempo and pitch together)."""
    if abs(factor - 1.0) < 1e-3:
        return audio
    return resample(audio, int(round(rate * factor)), rate)


def colored_noise(n: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of noise with a 1/f**exponent power spectrum (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = 1.0
    noise = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return (noise / (np.std(noise) + 1e-12)).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` plus colored noise (random tilt) at ``snr_db`` dB signal-to-noise ratio."""
    noise = colored_noise(len(audio), rng.uniform(0.0, 2.0), rng)
    power = np.mean(audio.astype(np.float64) ** 2) + 1e-12
    return (audio + noise * np.sqrt(power / 10 ** (snr_db / 10))).astype(np.float32)


def room_response(rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic room impulse response: direct path then exponentially decaying noise reaching -60 dB at ``rt60`` s."""
    t = np.arange(int(rate * rt60)) / rate
    tail = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)
    tail[: int(rate * 0.003)] = 0.0  # first reflections after ~3 ms
    rir = 0.3 * tail / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    rir[0] = 1.0
    return rir.astype(np.float32)


def reverberate(audio: np.ndarray, rate: int, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """``audio`` convolved with a synthetic room of reverberation time ``rt60`` s, same length."""
    rir = room_response(rate, rt60, rng)
    n = len(audio) + len(rir) - 1
    wet = np.fft.irfft(np.fft.rfft(audio, n) * np.fft.rfft(rir, n), n)
    return wet[: len(audio)].astype(np.float32)


def set_peak(audio: np.ndarray, peak_db: float) -> np.ndarray:
    """``audio`` scaled so its absolute peak is ``peak_db`` dBFS."""
    peak = float(np.max(np.abs(audio))) if len(audio) else 0.0
    return audio if peak == 0.0 else (audio * (10 ** (peak_db / 20) / peak)).astype(np.float32)


def pad_silence(audio: np.ndarray, rate: int, rng: np.random.Generator, most: float = 0.3) -> np.ndarray:
    """``audio`` with 0.05-``most`` s of silence before and after."""
    before, after = (int(rate * rng.uniform(0.05, most)) for _ in range(2))
    return np.concatenate([np.zeros(before, np.float32), audio, np.zeros(after, np.float32)])
