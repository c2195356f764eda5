"""What both engines of the streaming Paraformer share (numpy only): chunk settings, the encoder's
input window, and CIF firing carried across chunks.

A chunk of ``chunk_size = [c0, c1, c2]`` LFR frames (60 ms each) is decoded over a window: the
last ``c0 + c2`` frames of the previous window (the overlap), then the chunk's new frames, all
scaled by √d and position-encoded with absolute positions. The CIF counts window frames
``c0 .. c0+c1`` (the rest is look-ahead, counted by the next chunk) except on the final chunk.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLES_PER_FRAME = 960  # one LFR frame: 6 fbank hops of 10 ms at 16 kHz


@dataclass(frozen=True)
class ChunkSettings:
    """How a stream is cut and how far its attention looks back (fixed for the stream's life)."""

    chunk_size: tuple[int, int, int] = (0, 10, 5)  # [left, new, look-ahead] LFR frames
    encoder_chunk_look_back: int = 4  # chunks of encoder self-attention keys kept (-1: all, 0: none)
    decoder_chunk_look_back: int = 1  # chunks of encoder output the decoder also attends to (0 or -1: none)

    @property
    def stride(self) -> int:
        """Samples per chunk (9600 = 600 ms for ``[0, 10, 5]``)."""
        return self.chunk_size[1] * SAMPLES_PER_FRAME

    @property
    def overlap(self) -> int:
        """Window frames carried into the next window."""
        return self.chunk_size[0] + self.chunk_size[2]

    def encoder_keep(self) -> int:
        """Frames of keys/values an encoder layer keeps (0: none, -1: all)."""
        lb = self.encoder_chunk_look_back
        return -1 if lb == -1 else lb * self.chunk_size[1]

    def decoder_keep(self) -> int:
        """Frames of encoder output the decoder's cross-attention keeps (0: none)."""
        return max(self.decoder_chunk_look_back, 0) * self.chunk_size[1]


def position_encoding(start: int, length: int, depth: int) -> np.ndarray:
    """(length, depth) float32 sinusoidal encoding of positions ``start+1 .. start+length``: sines, then cosines."""
    positions = np.arange(start + 1, start + length + 1, dtype=np.float32)
    increment = np.float32(np.log(np.float32(10000.0)) / np.float32(depth / 2 - 1))
    inv_timescales = np.exp(np.arange(depth // 2, dtype=np.float32) * -increment).astype(np.float32)
    scaled = positions[:, None] * inv_timescales[None, :]
    return np.concatenate([np.sin(scaled), np.cos(scaled)], axis=1).astype(np.float32)


def mask_alphas(alphas: np.ndarray, lens: np.ndarray, settings: list[ChunkSettings], finals: list[bool]) -> np.ndarray:
    """CIF weights (B, W) of the frames each chunk counts: from c0, up to c0+c1 unless final, within the window."""
    out = alphas.astype(np.float32, copy=True)
    for i, (s, final) in enumerate(zip(settings, finals)):
        c0, c1, _ = s.chunk_size
        stop = int(lens[i]) if final else min(int(lens[i]), c0 + c1)
        out[i, :c0] = 0.0
        out[i, stop:] = 0.0
    return out


def fire_chunk(
    hidden: np.ndarray, alphas: np.ndarray, res_alpha: np.ndarray, res_hidden: np.ndarray, finals: np.ndarray,
    tail_threshold: float, threshold: float = 1.0,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Integrate-and-fire over one chunk per item, carrying the residue.

    hidden (B, W, D) and alphas (B, W) float32 (zero where a frame does not count); the residue of
    the previous chunk, ``res_alpha`` (B,) and ``res_hidden`` (B, D) (the accumulated frames divided
    by their weight), goes first; a final item gets a zero frame of weight ``tail_threshold`` last.
    Returns per item its token embeddings (n, D) and the new residue, in the reference's float32
    order of operations.
    """
    b, _, d = hidden.shape
    tail = np.where(finals, np.float32(tail_threshold), np.float32(0.0)).astype(np.float32)
    hidden = np.concatenate([res_hidden[:, None].astype(np.float32), hidden.astype(np.float32), np.zeros((b, 1, d), np.float32)], 1)
    alphas = np.concatenate([res_alpha[:, None].astype(np.float32), alphas.astype(np.float32), tail[:, None]], 1)
    one = np.float32(threshold)
    integrate = np.zeros(b, dtype=np.float32)
    frames = np.zeros((b, d), dtype=np.float32)
    tokens: list[list[np.ndarray]] = [[] for _ in range(b)]
    for t in range(alphas.shape[1]):
        alpha, h = alphas[:, t], hidden[:, t]
        fire = alpha + integrate >= one
        if fire.any():
            done = frames + (one - integrate)[:, None] * h
            for i in np.nonzero(fire)[0]:
                tokens[i].append(done[i])
        integrate = integrate + alpha
        integrate = np.where(fire, integrate - one, integrate).astype(np.float32)
        frames = np.where(fire[:, None], integrate[:, None] * h, frames + alpha[:, None] * h).astype(np.float32)
    safe = np.where(integrate > 0, integrate, np.float32(1.0))
    res_hidden = np.where((integrate > 0)[:, None], frames / safe[:, None], frames).astype(np.float32)
    embeds = [np.stack(tok) if tok else np.zeros((0, d), np.float32) for tok in tokens]
    return embeds, integrate, res_hidden


class StreamingNet:
    """What the streaming engines report to the ASR task: no timestamps, no hotwords."""

    always_timestamps = False
    timestamps_on_request = False
    takes_hotwords = False
    always_bias = False
