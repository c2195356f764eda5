"""The streaming Paraformer on PyTorch: a ``StreamingASRNet`` (funasr.engines) around ParaformerStreaming; numpy in and out.

The engine holds no stream state: each stream's network memory is a ``TorchStreamCache`` the
stream carries, read and replaced here for the chunks of a batch.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from funasr.engines.torch import TorchEngine
from funasr.models.paraformer_streaming.chunks import ChunkSettings, StreamingNet
from funasr.models.paraformer_streaming.model import stack_pasts

KV = Optional[tuple[torch.Tensor, torch.Tensor]]  # (L, D) keys and values kept, or None


@dataclass
class TorchStreamCache:
    """One stream's network memory: encoder look-back keys/values, decoder FSMN inputs and cross-attention keys/values."""

    encoder: list[KV] = field(default_factory=list)  # per encoder layer
    fsmn: list[Optional[torch.Tensor]] = field(default_factory=list)  # per decoder layer (D, kernel-1); None: zeros
    cross: list[KV] = field(default_factory=list)  # per decoder layer


def keep_last(old: KV, new: tuple[torch.Tensor, torch.Tensor], keep: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``new`` after ``old``, cut to the last ``keep`` frames (-1: all; ``old`` None: ``new`` as it is)."""
    if old is None:
        return new
    k, v = torch.cat([old[0], new[0]]), torch.cat([old[1], new[1]])
    return (k, v) if keep < 0 else (k[-keep:], v[-keep:])


class ParaformerStreamingEngine(TorchEngine, StreamingNet):
    """Batched chunk steps of many streams: ``encode_chunks`` then ``decode_chunks`` for the items that fired tokens."""

    def __init__(self, module: nn.Module, cfg: dict[str, Any], device: Optional[str] = None, dtype: Optional[str] = None) -> None:
        super().__init__(module, cfg, device, dtype)
        self.encoder_layers = len(module.encoder.encoders0) + len(module.encoder.encoders)
        self.decoder_layers = len(module.decoder.decoders)

    def new_cache(self) -> TorchStreamCache:
        """The memory of a stream that has decoded nothing."""
        return TorchStreamCache([None] * self.encoder_layers, [None] * self.decoder_layers, [None] * self.decoder_layers)

    @torch.inference_mode()
    def encode_chunks(
        self, windows: list[np.ndarray], caches: list[TorchStreamCache], settings: list[ChunkSettings]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Windows (W_i, 560) of B streams -> encoder output (B, W, D), lengths (B,), CIF weights (B, W); caches updated."""
        lens = np.array([len(w) for w in windows], dtype=np.int64)
        batch = np.zeros((len(windows), int(lens.max()), windows[0].shape[1]), dtype=np.float32)
        for i, w in enumerate(windows):
            batch[i, : len(w)] = w
        x, t_lens = self.tensor(batch), self.tensor(lens)
        pasts = [stack_pasts([c.encoder[layer] for c in caches], x) for layer in range(self.encoder_layers)]
        enc, alphas, kvs = self.module.encode_chunk(x, t_lens, pasts)
        for i, (cache, s) in enumerate(zip(caches, settings)):
            keep = s.encoder_keep()
            if keep == 0:
                continue
            stop = int(lens[i]) - s.chunk_size[2]  # the look-ahead frames are seen again in the next window
            cache.encoder = [keep_last(old, (k[i, :stop], v[i, :stop]), keep) for old, (k, v) in zip(cache.encoder, kvs)]
        return self.numpy(enc.float()), lens, self.numpy(alphas)

    @torch.inference_mode()
    def decode_chunks(
        self, enc: np.ndarray, enc_lens: np.ndarray, embeds: list[np.ndarray], caches: list[TorchStreamCache],
        settings: list[ChunkSettings],
    ) -> list[list[int]]:
        """Encoder outputs (B, W, D) and each item's fired embeddings (n_i >= 1, D) -> greedy ids per item; caches updated."""
        counts = [len(e) for e in embeds]
        batch = np.zeros((len(embeds), max(counts), enc.shape[2]), dtype=np.float32)
        for i, e in enumerate(embeds):
            batch[i, : len(e)] = e
        memory, x = self.tensor(enc).to(self.module.dtype), self.tensor(batch)
        k = self.module.history_size
        histories = [
            torch.stack([c.fsmn[layer] if c.fsmn[layer] is not None else memory.new_zeros(memory.shape[2], k) for c in caches])
            for layer in range(self.decoder_layers)
        ]
        pasts = [stack_pasts([c.cross[layer] for c in caches], memory) for layer in range(self.decoder_layers)]
        ids, padded, kvs = self.module.decode_chunk(memory, self.tensor(enc_lens), x, histories, pasts)
        for i, (cache, s) in enumerate(zip(caches, settings)):
            n, w = counts[i], int(enc_lens[i])
            cache.fsmn = [p[i, :, n : n + k].clone() for p in padded]
            keep = s.decoder_keep()
            if keep:
                cache.cross = [keep_last(old, (kk[i, :w][-keep:], vv[i, :w][-keep:]), keep) for old, (kk, vv) in zip(cache.cross, kvs)]
        ids_np = self.numpy(ids)
        return [ids_np[i, : counts[i]].tolist() for i in range(len(embeds))]
