"""Export graphs of the streaming Paraformer, with the names FunASR's online runtimes read.

``model`` (the encoder): ``speech`` f32 (B, T, 560) windows already scaled by √d and
position-encoded (the runtime knows the absolute positions and keeps the overlap frames),
``speech_lengths`` i32 (B,) -> ``enc`` f32 (B, T, D) (zero past each length), ``enc_len`` i32 (B,),
``alphas`` f32 (B, T) (the CIF weights; the runtime masks the look-ahead and fires).

``decoder``: ``enc``, ``enc_len``, ``acoustic_embeds`` f32 (B, N, D), ``acoustic_embeds_len``
i32 (B,) and per layer ``in_cache_i`` f32 (B, D, kernel-1), the FSMN inputs before the chunk ->
``logits`` f32 (B, N, vocab) log-probabilities, ``sample_ids`` i64 (B, N) and ``out_cache_i``,
each item's last kernel-1 FSMN inputs (for one item, the last columns, as FunASR's graph gives).
Attention look-back is not part of this contract (FunASR's runtimes decode without it).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from funasr.export.graph import ExportGraph
from funasr.export.layers import EncoderExport, decoder_layers, key_bias, token_mask
from funasr.models.paraformer_streaming.family import (
    ALPHAS, DECODER_GRAPH, EMBEDS, EMBEDS_LEN, ENC, ENC_LEN, ENCODER_GRAPH, IN_CACHE, LOGITS, OUT_CACHE, SAMPLE_IDS,
    SPEECH, SPEECH_LENGTHS,
)
from funasr.models.sanm import length_mask


class StreamingEncoderExport(nn.Module):
    """Encoder over windows (no scaling, no position encoding) and the CIF weights of its output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = EncoderExport(model.encoder, scaled=False)
        self.predictor = model.predictor

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lens = speech_lengths.long()
        enc = self.encoder(speech, lens)
        valid = length_mask(lens, enc.shape[1])
        alphas = self.predictor.frame_alphas(enc.to(self.predictor.cif_output.weight.dtype), valid.float())
        return enc.float(), speech_lengths, alphas


class StreamingDecoderExport(nn.Module):
    """ParaformerSANMDecoder over one chunk of tokens: causal FSMN continued from the caches, cross-attention to the window."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.decoders = decoder_layers(model.decoder, "decoders")
        self.decoders3 = decoder_layers(model.decoder, "decoders3")
        self.after_norm = model.decoder.after_norm
        self.output_layer = model.decoder.output_layer
        self.history = model.history_size

    def forward(
        self, enc: torch.Tensor, enc_len: torch.Tensor, acoustic_embeds: torch.Tensor, acoustic_embeds_len: torch.Tensor,
        *in_cache: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        memory = enc.to(self.after_norm.weight.dtype)
        bias = key_bias(length_mask(enc_len.long(), memory.shape[1]), memory.dtype)
        x = acoustic_embeds.to(memory.dtype)
        mask = token_mask(acoustic_embeds_len.long(), x)  # (B, N, 1)
        ends = acoustic_embeds_len.long()[:, None] + torch.arange(self.history, device=x.device)[None, :]  # (B, kernel-1)
        out_cache = []
        for layer, cache in zip(self.decoders, in_cache):
            y = layer.norm2(layer.feed_forward(layer.norm1(x))) * mask
            padded = torch.cat([cache.to(y.dtype), y.transpose(1, 2)], dim=2)  # (B, D, kernel-1+N)
            weight = layer.self_attn.fsmn_block.weight
            x = x + F.conv1d(padded, weight, groups=weight.shape[0]).transpose(1, 2) + y
            x = x + layer.src_attn(layer.norm3(x), memory, bias)
            out_cache.append(torch.gather(padded, 2, ends[:, None, :].expand(-1, padded.shape[1], -1)).float())
        for layer in self.decoders3:
            x = layer.self_part(x, mask)
        logits = torch.log_softmax(self.output_layer(self.after_norm(x)).float(), dim=-1)
        return (logits, logits.argmax(-1), *out_cache)


def graphs(model: nn.Module, frontend: Any = None) -> list[ExportGraph]:
    """``model.onnx`` (encoder) and ``decoder.onnx`` of a ParaformerStreaming."""
    d = model.encoder.output_size()
    feat_dim = model.encoder.encoders0[0].self_attn.linear_q_k_v.in_features
    layers, k = len(model.decoder.decoders), model.history_size
    lens = torch.tensor([6, 30], dtype=torch.int32)
    encoder = ExportGraph(
        ENCODER_GRAPH, StreamingEncoderExport(model), (torch.randn(2, 30, feat_dim), lens),
        [SPEECH, SPEECH_LENGTHS], [ENC, ENC_LEN, ALPHAS],
        {SPEECH: {0: "batch_size", 1: "feats_length"}, SPEECH_LENGTHS: {0: "batch_size"},
         ENC: {0: "batch_size", 1: "feats_length"}, ENC_LEN: {0: "batch_size"}, ALPHAS: {0: "batch_size", 1: "feats_length"}},
    )
    caches = tuple(torch.zeros(2, d, k) for _ in range(layers))
    in_names, out_names = [IN_CACHE.format(i) for i in range(layers)], [OUT_CACHE.format(i) for i in range(layers)]
    axes = {ENC: {0: "batch_size", 1: "feats_length"}, ENC_LEN: {0: "batch_size"}, EMBEDS: {0: "batch_size", 1: "text_length"},
            EMBEDS_LEN: {0: "batch_size"}, LOGITS: {0: "batch_size", 1: "text_length"}, SAMPLE_IDS: {0: "batch_size", 1: "text_length"}}
    axes.update({name: {0: "batch_size"} for name in in_names + out_names})
    decoder = ExportGraph(
        DECODER_GRAPH, StreamingDecoderExport(model),
        (torch.randn(2, 30, d), lens, torch.randn(2, 4, d), torch.tensor([2, 4], dtype=torch.int32), *caches),
        [ENC, ENC_LEN, EMBEDS, EMBEDS_LEN, *in_names], [LOGITS, SAMPLE_IDS, *out_names], axes,
    )
    return [encoder, decoder]
