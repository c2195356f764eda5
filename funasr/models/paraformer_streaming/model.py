"""ParaformerStreaming: the Paraformer decoded chunk by chunk (SANMEncoderChunkOpt, CifPredictorV2, causal SAN-M decoder).

The modules are stateless: every cache goes in and comes out as tensors, and the caller (the
engine, for the streams it serves) keeps what each stream needs. Shapes: B chunks of different
streams, W window frames, D model width, L look-back frames, N tokens fired in the chunk.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from funasr import registry
from funasr.errors import ConfigError
from funasr.models.paraformer.decoder import masks
from funasr.models.paraformer.model import Paraformer
from funasr.models.sanm import Past, SANMEncoder, length_mask


@registry.register()
class SANMEncoderChunkOpt(SANMEncoder):
    """SANMEncoder run on chunk windows: full attention within the window plus earlier chunks' keys/values.

    ``input_layer: pe_online``: the input arrives scaled by √d and position-encoded (the stream
    knows the absolute positions), so the encoder itself adds nothing. The training-only chunk
    options (``chunk_size``, ``stride``, look-back factors) are accepted and unused.
    """

    def __init__(self, input_size: int, input_layer: Optional[str] = "pe_online", **conf: Any) -> None:
        if input_layer != "pe_online":
            raise ConfigError(f"SANMEncoderChunkOpt input_layer {input_layer!r} is not supported (only 'pe_online')")
        super().__init__(input_size, input_layer=None, **conf)

    def forward_chunk(
        self, window: torch.Tensor, lens: torch.Tensor, pasts: list[Optional[Past]]
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Windows (B, W, D_in) with lengths (B,), per layer the earlier keys/values (or None)
        -> output (B, W, D), zero past each length, and per layer this window's (k, v) (B, W, D)."""
        mask, key_mask = masks(lens, window.shape[1], window.dtype)
        x, kvs = window, []
        for layer, past in zip([*self.encoders0, *self.encoders], pasts):
            x, kv = layer.forward_chunk(x, mask, key_mask, past)
            kvs.append(kv)
        x = self.after_norm(x)
        return (x if mask is None else x * mask), kvs


@registry.register()
class ParaformerStreaming(Paraformer):
    """Streaming Paraformer: ``encode_chunk`` (encoder and CIF weights) and ``decode_chunk`` (decoder over fired tokens)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.encoder, SANMEncoderChunkOpt):
            raise ConfigError(f"ParaformerStreaming needs encoder SANMEncoderChunkOpt, got {type(self.encoder).__name__}")
        decoder = self.decoder
        if decoder.decoders2 is not None or decoder.output_layer is None:
            raise ConfigError("ParaformerStreaming decodes chunks with att_layer_num == num_blocks and an output layer (as released)")
        fsmn = decoder.decoders[0].self_attn.fsmn_block
        if fsmn.right != 0:
            raise ConfigError(
                f"ParaformerStreaming needs a causal decoder memory (sanm_shfit = (kernel_size - 1) / 2); "
                f"this config looks {fsmn.right} tokens ahead"
            )

    @property
    def history_size(self) -> int:
        """Tokens of FSMN input each decoder layer carries between chunks (kernel_size - 1)."""
        return self.decoder.decoders[0].self_attn.fsmn_block.left

    def encode_chunk(
        self, window: torch.Tensor, lens: torch.Tensor, pasts: list[Optional[Past]]
    ) -> tuple[torch.Tensor, torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        """Windows (B, W, 560) -> encoder output (B, W, D), CIF weights (B, W) float32 (zero past each length), per-layer (k, v)."""
        enc, kvs = self.encoder.forward_chunk(window.to(self.dtype), lens, pasts)
        mask = length_mask(lens, enc.shape[1])
        predictor = self.predictor
        alphas = predictor.frame_alphas(enc.to(predictor.cif_output.weight.dtype), mask.float())
        return enc, alphas, kvs

    def decode_chunk(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        embeds: torch.Tensor,
        histories: list[torch.Tensor],
        pasts: list[Optional[Past]],
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """Token embeddings (B, N, D) over the chunk's encoder output -> greedy ids (B, N), per-layer FSMN inputs and memory (k, v)."""
        _, memory_mask = masks(enc_lens, enc.shape[1], enc.dtype)
        logits, padded, kvs = self.decoder.forward_chunk(enc, memory_mask, embeds.to(enc.dtype), histories, pasts)
        return logits.argmax(-1), padded, kvs


def stack_pasts(items: list[Optional[tuple[torch.Tensor, torch.Tensor]]], like: torch.Tensor) -> Optional[Past]:
    """Per-item (k, v) (L_i, D) (None: nothing kept) -> keys, values (B, max L, D) right-padded and their mask."""
    lens = [0 if kv is None else kv[0].shape[0] for kv in items]
    longest = max(lens)
    if longest == 0:
        return None
    d = next(kv for kv in items if kv is not None)[0].shape[-1]
    keys = like.new_zeros(len(items), longest, d)
    values = like.new_zeros(len(items), longest, d)
    for i, kv in enumerate(items):
        if kv is not None:
            keys[i, : lens[i]], values[i, : lens[i]] = kv
    if min(lens) == longest:
        return keys, values, None
    return keys, values, length_mask(torch.tensor(lens, device=like.device), longest)
