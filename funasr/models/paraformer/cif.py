"""CIF arithmetic in numpy (no torch): integrate-and-fire, timestamp inputs and timestamps.

Shared by the PyTorch and onnxruntime engines of the Paraformer family and by the ASR task.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

TIMESTAMP_FIRE = 1.0 - 1e-4  # the timestamp routine's firing threshold (and subtraction)


def integrate_and_fire(alphas: np.ndarray, threshold: float, subtract: float) -> np.ndarray:
    """Running integrate of ``alphas`` (B, T) in float32, firing at ``>= threshold``.

    Returns the integrate value at every step (before the fire's ``subtract``), exactly as
    the reference's sequential float32 loop computes it.
    """
    alphas = np.asarray(alphas, dtype=np.float32)
    if alphas.ndim == 1:
        return integrate_and_fire(alphas[None], threshold, subtract)[0]
    threshold32, subtract32 = np.float32(threshold), np.float32(subtract)
    integrate = np.zeros(alphas.shape[0], dtype=np.float32)
    fires = np.empty_like(alphas)
    for t in range(alphas.shape[1]):
        integrate = integrate + alphas[:, t]
        fires[:, t] = integrate
        integrate = np.where(integrate >= threshold32, integrate - subtract32, integrate)
    return fires


def upsampled_stamp_inputs(us_alphas: np.ndarray, enc_lens: Sequence[int], rate: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Timestamp inputs from the upsampled timestamp head (CifPredictorV3): its weights (B, rate·T), and their fires.

    Per item, trimmed to ``rate`` steps per encoder frame.
    """
    weights = [np.asarray(us_alphas[i, : rate * int(n)], dtype=np.float32) for i, n in enumerate(enc_lens)]
    return weights, [integrate_and_fire(w, TIMESTAMP_FIRE, TIMESTAMP_FIRE) for w in weights]


def cif_stamp_inputs(alphas: np.ndarray, peaks: np.ndarray, enc_lens: Sequence[int]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Timestamp inputs of a model without the timestamp head (CifPredictorV2): from the CIF's own outputs.

    ``alphas`` (B, T+1) are the CIF weights and ``peaks`` (B, T+1) its integrate values. The
    reference passes them to the timestamp routine SWAPPED (its ``ts_prediction_lfr6_standard(
    us_peaks, us_alphas)`` call, kept for identical timestamps): the integrate values go in as
    the weights and the CIF weights as the fires. Per item, trimmed to frames + the tail step.
    """
    lens = [int(n) + 1 for n in enc_lens]
    weights = [np.asarray(peaks[i, :n], dtype=np.float32) for i, n in enumerate(lens)]
    fires = [np.asarray(alphas[i, :n], dtype=np.float32) for i, n in enumerate(lens)]
    return weights, fires


def ts_prediction_lfr6_standard(
    alphas: np.ndarray,
    peaks: np.ndarray,
    tokens: Sequence[str],
    vad_offset: float = 0.0,
    upsample_rate: int = 3,
    force_time_shift: float = -1.5,
) -> list[list[int]]:
    """Per-token ``[start_ms, end_ms]`` from CIF weights ``alphas`` and fires ``peaks`` (1-D).

    ``upsample_rate`` is 3 for the BiCif/SeACo timestamp head (20 ms steps) and 1 for plain
    Paraformer (60 ms steps). ``alphas`` is not modified.
    """
    start_end_threshold, max_token_duration = 5, 12
    time_rate = 10.0 * 6 / 1000 / upsample_rate
    if not len(tokens):
        return []
    n_tokens = len(tokens) - 1 if tokens[-1] == "</s>" else len(tokens)
    fire_place = np.nonzero(np.asarray(peaks) >= np.float32(TIMESTAMP_FIRE))[0] + force_time_shift
    num_frames = len(peaks)
    if len(fire_place) != n_tokens + 1:
        alphas = np.asarray(alphas, dtype=np.float32)
        total = np.float32(alphas.sum(dtype=np.float64))
        alphas = alphas / (total / np.float32(n_tokens + 1))
        peaks = integrate_and_fire(alphas, TIMESTAMP_FIRE, TIMESTAMP_FIRE)
        fire_place = np.nonzero(peaks >= np.float32(TIMESTAMP_FIRE))[0] + force_time_shift
    if len(fire_place) == 0:
        return []
    stamps: list[list[int]] = []
    is_token: list[bool] = []
    if fire_place[0] > start_end_threshold:
        stamps.append([0.0, fire_place[0] * time_rate])
        is_token.append(False)
    for i in range(len(fire_place) - 1):
        is_token.append(True)
        if fire_place[i + 1] - fire_place[i] <= max_token_duration:
            stamps.append([fire_place[i] * time_rate, fire_place[i + 1] * time_rate])
        else:
            split = fire_place[i] + max_token_duration
            stamps.append([fire_place[i] * time_rate, split * time_rate])
            stamps.append([split * time_rate, fire_place[i + 1] * time_rate])
            is_token.append(False)
    if not stamps:
        return []
    if num_frames - fire_place[-1] > start_end_threshold:
        end = (num_frames + fire_place[-1]) * 0.5
        stamps[-1][1] = end * time_rate
        stamps.append([end * time_rate, num_frames * time_rate])
        is_token.append(False)
    else:
        stamps[-1][1] = num_frames * time_rate
    if vad_offset:
        stamps = [[s + vad_offset / 1000.0, e + vad_offset / 1000.0] for s, e in stamps]
    return [[int(s * 1000), int(e * 1000)] for (s, e), keep in zip(stamps, is_token) if keep]
