"""Export graphs of the streaming Paraformer: FunASR's online pair, and the same pair with attention look-back.

``model`` (the encoder): ``speech`` f32 (B, T, 560) windows already scaled by √d and
position-encoded (the runtime knows the absolute positions and keeps the overlap frames),
``speech_lengths`` i32 (B,) -> ``enc`` f32 (B, T, D) (zero past each length), ``enc_len`` i32 (B,),
``alphas`` f32 (B, T) (the CIF weights; the runtime masks the look-ahead and fires).

``decoder``: ``enc``, ``enc_len``, ``acoustic_embeds`` f32 (B, N, D), ``acoustic_embeds_len``
i32 (B,) and per layer ``in_cache_i`` f32 (B, D, kernel-1), the FSMN inputs before the chunk ->
``logits`` f32 (B, N, vocab) log-probabilities, ``sample_ids`` i64 (B, N) and ``out_cache_i``,
each item's last kernel-1 FSMN inputs (for one item, the last columns, as FunASR's graph gives).

FunASR's runtimes read these two and decode without attention look-back. ``model_look_back``
adds ``look_back_keys`` / ``look_back_values`` f32 (B, layers, L, D) with ``look_back_len`` i32
(B,) (each item's earlier keys/values, right-padded) and outputs the window's ``keys`` / ``values``
(B, layers, T, D); ``decoder_look_back`` adds ``look_back_enc`` f32 (B, L, D) with
``look_back_enc_len`` i32 (B,), earlier encoder output the cross-attention also attends to. The
runtime keeps what each stream's look-back asks for, so a chunk costs the same at any position.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from funasr.export.graph import DEFAULT_AXIS_RANGES, ExportGraph
from funasr.export.layers import EncoderExport, decoder_layers, key_bias, token_mask
from funasr.models.paraformer_streaming.family import (
    ALPHAS, DECODER_GRAPH, DECODER_LOOK_BACK_GRAPH, EMBEDS, EMBEDS_LEN, ENC, ENC_LEN, ENCODER_GRAPH, ENCODER_LOOK_BACK_GRAPH,
    IN_CACHE, KEYS, LOGITS, OUT_CACHE, PAST_ENC, PAST_ENC_LEN, PAST_KEYS, PAST_LEN, PAST_VALUES, SAMPLE_IDS, SPEECH,
    SPEECH_LENGTHS, VALUES,
)
from funasr.models.sanm import depthwise_conv, length_mask

LOOK_BACK_AXIS = "look_back_length"  # frames of look-back (TensorRT profile range below)


class StreamingEncoderExport(nn.Module):
    """Encoder over windows (no scaling, no position encoding) and the CIF weights of its output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = EncoderExport(model.encoder, scaled=False)
        self.predictor = model.predictor

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lens = speech_lengths.long()
        enc = self.encoder(speech, lens)
        return enc.float(), speech_lengths, self.alphas(enc, lens)

    def alphas(self, enc: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """CIF weights (B, T) of the encoder output, zero past each length."""
        valid = length_mask(lens, enc.shape[1])
        return self.predictor.frame_alphas(enc.to(self.predictor.cif_output.weight.dtype), valid.float())


class LookBackEncoderExport(StreamingEncoderExport):
    """The encoder whose every layer also attends to the stream's earlier keys/values; returns the window's own."""

    def forward(
        self, speech: torch.Tensor, speech_lengths: torch.Tensor, look_back_keys: torch.Tensor, look_back_values: torch.Tensor,
        look_back_len: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        encoder = self.encoder
        lens = speech_lengths.long()
        x = speech.to(encoder.after_norm.weight.dtype)
        valid = length_mask(lens, x.shape[1])  # (B, T)
        past_valid = length_mask(look_back_len.long(), look_back_keys.shape[2])  # (B, L)
        bias = key_bias(torch.cat([past_valid, valid], dim=1), x.dtype)
        mask = valid[..., None].to(x.dtype)
        keys, values = [], []
        for i, layer in enumerate((*encoder.encoders0, *encoder.encoders)):
            past = (look_back_keys[:, i].to(x.dtype), look_back_values[:, i].to(x.dtype))
            x, (k, v) = layer.forward_chunk(x, mask, bias, past)
            keys.append(k)
            values.append(v)
        enc = encoder.after_norm(x) * mask
        return enc.float(), speech_lengths, self.alphas(enc, lens), torch.stack(keys, 1).float(), torch.stack(values, 1).float()


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
        return self.run(enc, length_mask(enc_len.long(), enc.shape[1]), acoustic_embeds, acoustic_embeds_len, in_cache)

    def run(
        self, memory: torch.Tensor, valid: torch.Tensor, acoustic_embeds: torch.Tensor, acoustic_embeds_len: torch.Tensor,
        in_cache: tuple[torch.Tensor, ...],
    ) -> tuple[torch.Tensor, ...]:
        """The decoder over ``memory`` (B, T, D) whose valid frames are ``valid`` (B, T) bool."""
        memory = memory.to(self.after_norm.weight.dtype)
        bias = key_bias(valid, memory.dtype)
        x = acoustic_embeds.to(memory.dtype)
        mask = token_mask(acoustic_embeds_len.long(), x)  # (B, N, 1)
        ends = acoustic_embeds_len.long()[:, None] + torch.arange(self.history, device=x.device)[None, :]  # (B, kernel-1)
        out_cache = []
        for layer, cache in zip(self.decoders, in_cache):
            y = layer.norm2(layer.feed_forward(layer.norm1(x))) * mask
            padded = torch.cat([cache.to(y.dtype), y.transpose(1, 2)], dim=2)  # (B, D, kernel-1+N)
            weight = layer.self_attn.fsmn_block.weight
            x = x + depthwise_conv(padded, weight).transpose(1, 2) + y
            x = x + layer.src_attn(layer.norm3(x), memory, bias)
            out_cache.append(torch.gather(padded, 2, ends[:, None, :].expand(-1, padded.shape[1], -1)).float())
        for layer in self.decoders3:
            x = layer.self_part(x, mask)
        logits = torch.log_softmax(self.output_layer(self.after_norm(x)).float(), dim=-1)
        return (logits, logits.argmax(-1), *out_cache)


class LookBackDecoderExport(StreamingDecoderExport):
    """The decoder whose cross-attention also attends to earlier encoder output (``look_back_enc``, right-padded)."""

    def forward(
        self, enc: torch.Tensor, enc_len: torch.Tensor, acoustic_embeds: torch.Tensor, acoustic_embeds_len: torch.Tensor,
        look_back_enc: torch.Tensor, look_back_enc_len: torch.Tensor, *in_cache: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        memory = torch.cat([look_back_enc, enc], dim=1)
        valid = torch.cat([length_mask(look_back_enc_len.long(), look_back_enc.shape[1]), length_mask(enc_len.long(), enc.shape[1])], 1)
        return self.run(memory, valid, acoustic_embeds, acoustic_embeds_len, in_cache)


def graphs(model: nn.Module, frontend: Any = None) -> list[ExportGraph]:
    """``model.onnx`` / ``decoder.onnx`` (FunASR's online pair) and ``model_look_back.onnx`` / ``decoder_look_back.onnx``."""
    d = model.encoder.output_size()
    feat_dim = model.encoder.encoders0[0].self_attn.linear_q_k_v.in_features
    enc_layers = len(model.encoder.encoders0) + len(model.encoder.encoders)
    layers, k = len(model.decoder.decoders), model.history_size
    lens = torch.tensor([6, 30], dtype=torch.int32)
    past_lens = torch.tensor([0, 8], dtype=torch.int32)
    speech = torch.randn(2, 30, feat_dim)
    frames = {0: "batch_size", 1: "feats_length"}
    ranges = {**DEFAULT_AXIS_RANGES, LOOK_BACK_AXIS: (1, 40, 2000)}

    enc_axes = {SPEECH: frames, SPEECH_LENGTHS: {0: "batch_size"}, ENC: frames, ENC_LEN: {0: "batch_size"}, ALPHAS: frames}
    encoder = ExportGraph(
        ENCODER_GRAPH, StreamingEncoderExport(model), (speech, lens), [SPEECH, SPEECH_LENGTHS], [ENC, ENC_LEN, ALPHAS], enc_axes,
    )
    past = {0: "batch_size", 2: LOOK_BACK_AXIS}
    encoder_lb = ExportGraph(
        ENCODER_LOOK_BACK_GRAPH, LookBackEncoderExport(model),
        (speech, lens, torch.randn(2, enc_layers, 8, d), torch.randn(2, enc_layers, 8, d), past_lens),
        [SPEECH, SPEECH_LENGTHS, PAST_KEYS, PAST_VALUES, PAST_LEN], [ENC, ENC_LEN, ALPHAS, KEYS, VALUES],
        {**enc_axes, PAST_KEYS: past, PAST_VALUES: past, PAST_LEN: {0: "batch_size"},
         KEYS: {0: "batch_size", 2: "feats_length"}, VALUES: {0: "batch_size", 2: "feats_length"}},
        ranges,
    )

    caches = tuple(torch.zeros(2, d, k) for _ in range(layers))
    in_names, out_names = [IN_CACHE.format(i) for i in range(layers)], [OUT_CACHE.format(i) for i in range(layers)]
    axes = {ENC: frames, ENC_LEN: {0: "batch_size"}, EMBEDS: {0: "batch_size", 1: "text_length"},
            EMBEDS_LEN: {0: "batch_size"}, LOGITS: {0: "batch_size", 1: "text_length"}, SAMPLE_IDS: {0: "batch_size", 1: "text_length"}}
    axes.update({name: {0: "batch_size"} for name in in_names + out_names})
    tokens = (torch.randn(2, 4, d), torch.tensor([2, 4], dtype=torch.int32))
    decoder = ExportGraph(
        DECODER_GRAPH, StreamingDecoderExport(model), (torch.randn(2, 30, d), lens, *tokens, *caches),
        [ENC, ENC_LEN, EMBEDS, EMBEDS_LEN, *in_names], [LOGITS, SAMPLE_IDS, *out_names], axes,
    )
    decoder_lb = ExportGraph(
        DECODER_LOOK_BACK_GRAPH, LookBackDecoderExport(model),
        (torch.randn(2, 30, d), lens, *tokens, torch.randn(2, 8, d), past_lens, *caches),
        [ENC, ENC_LEN, EMBEDS, EMBEDS_LEN, PAST_ENC, PAST_ENC_LEN, *in_names], [LOGITS, SAMPLE_IDS, *out_names],
        {**axes, PAST_ENC: {0: "batch_size", 1: LOOK_BACK_AXIS}, PAST_ENC_LEN: {0: "batch_size"}},
        ranges,
    )
    return [encoder, decoder, encoder_lb, decoder_lb]

