"""Export-friendly wrappers of shared parts: every shape follows the inputs, no Python branch on data.

The eager models skip masks when nothing is padded, cache position tables, gather CIF tokens
with index_add and ``int(...)`` sizes, and attend with ``scaled_dot_product_attention`` (whose
export adds NaN guards over every score matrix); a traced graph would freeze the first and
carry the last. These wrappers hold the same modules (same parameters) and compute the same
math with masks always built from the lengths (padded keys get an additive ``-inf`` bias),
the position encoding computed in the graph, and CIF tokens gathered by a one-hot matrix
product whose size is the data's token count. Each wrapper is called as a module with the
model's attribute names, so graph node names keep the model's hierarchy
(``/decoder/output_layer/MatMul``), which the int8 quantisation's exclusions rely on.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from funasr.models.sanm import SANMEncoder, fsmn_memory, length_mask, sinusoidal_encoding


def key_bias(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, T) bool valid keys -> (B, 1, 1, T) additive attention bias (0 or -inf) in the scores' ``dtype``."""
    return torch.zeros_like(valid, dtype=dtype).masked_fill(~valid, float("-inf"))[:, None, None, :]


def split_heads(x: torch.Tensor, batch: torch.Tensor, heads: int, dk: int) -> torch.Tensor:
    """(B, T, heads * dk) -> (B, heads, T, dk)."""
    return x.reshape(batch, -1, heads, dk).transpose(1, 2)


def batch_size(q: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """B, read off the bias when there is one: every layer of a graph shares it, so the graph computes B once."""
    return q.shape[0] if bias is None else bias.shape[0]


def attention_probs(q: torch.Tensor, k: torch.Tensor, heads: int, dk: int, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Softmax attention weights (B, heads, Tq, Tk) of q (B, Tq, D) over k (B, Tk, D); ``bias`` is added to the scores.

    ``heads`` and ``dk`` are the module's sizes (Python numbers), so the graph holds them as constants
    instead of computing them from each layer's shapes.
    """
    batch = batch_size(q, bias)
    scores = torch.matmul(split_heads(q * dk**-0.5, batch, heads, dk), split_heads(k, batch, heads, dk).transpose(2, 3))
    if bias is not None:
        scores = scores + bias
    return torch.softmax(scores, dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, dk: int, bias: Optional[torch.Tensor]) -> torch.Tensor:
    """Multi-head scaled dot-product attention: q (B, Tq, D), k/v (B, Tk, D) -> (B, Tq, D)."""
    batch = batch_size(q, bias)
    out = torch.matmul(attention_probs(q, k, heads, dk, bias), split_heads(v, batch, heads, dk))  # (B, heads, Tq, dk)
    return out.transpose(1, 2).reshape(batch, -1, heads * dk)


class SelfAttentionExport(nn.Module):
    """MultiHeadedAttentionSANM: attention over q|k|v plus the FSMN memory on v."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.h = attn.h
        self.d = attn.linear_out.in_features  # q, k and v each
        self.linear_q_k_v = attn.linear_q_k_v
        self.linear_out = attn.linear_out
        self.fsmn_block = attn.fsmn_block

    def forward(self, x: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.forward_chunk(x, mask, bias, None)[0]

    def forward_chunk(
        self, x: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor, past: Optional[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``forward`` whose keys/values are ``past`` (B, L, D) then the chunk's (``bias`` covers both); also the chunk's (k, v)."""
        q, k, v = torch.split(self.linear_q_k_v(x), [self.d] * 3, dim=-1)  # sizes as constants, not from the shape
        keys, values = (k, v) if past is None else (torch.cat([past[0], k], dim=1), torch.cat([past[1], v], dim=1))
        out = attention(q, keys, values, self.h, self.d // self.h, bias)
        return self.linear_out(out) + fsmn_memory(self.fsmn_block, v, mask), (k, v)


class EncoderLayerExport(nn.Module):
    """EncoderLayerSANM: pre-LN SAN-M (residual when in == out), then pre-LN FFN with residual."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.self_attn = SelfAttentionExport(layer.self_attn)
        self.feed_forward = layer.feed_forward
        self.norm1 = layer.norm1
        self.norm2 = layer.norm2
        self.residual = layer.residual

    def forward(self, x: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return self.forward_chunk(x, mask, bias, None)[0]

    def forward_chunk(
        self, x: torch.Tensor, mask: torch.Tensor, bias: torch.Tensor, past: Optional[tuple[torch.Tensor, torch.Tensor]]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The layer with attention also over ``past`` keys/values; also the attention's (k, v) of the chunk."""
        y, kv = self.self_attn.forward_chunk(self.norm1(x), mask, bias, past)
        x = x + y if self.residual else y
        return x + self.feed_forward(self.norm2(x)), kv


class EncoderExport(nn.Module):
    """SANMEncoder: (B, T, D_in) features and (B,) lengths -> (B, T, D), zero past each length."""

    def __init__(self, encoder: SANMEncoder, scaled: bool = True) -> None:
        super().__init__()
        self.scale = encoder.output_size() ** 0.5 if scaled else 1.0  # a streaming encoder's input comes scaled
        self.position_encoding = encoder.embed is not None
        self.encoders0 = nn.ModuleList(EncoderLayerExport(layer) for layer in encoder.encoders0)
        self.encoders = nn.ModuleList(EncoderLayerExport(layer) for layer in encoder.encoders)
        self.after_norm = encoder.after_norm

    def forward(self, xs: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        xs = xs.to(self.after_norm.weight.dtype)  # float32 features into a float16 encoder
        valid = length_mask(lens, xs.shape[1])  # (B, T)
        bias = key_bias(valid, xs.dtype)
        return self.run_layers(xs, valid[..., None].to(xs.dtype), [bias] * (len(self.encoders0) + len(self.encoders)))

    def run_layers(self, xs: torch.Tensor, mask: torch.Tensor, biases: list[torch.Tensor]) -> torch.Tensor:
        """Scale, position-encode and run every layer with its own additive attention bias; ``mask`` (B, T, 1) valid frames."""
        if self.scale != 1.0:
            xs = xs * self.scale
        if self.position_encoding:
            xs = xs + sinusoidal_encoding(xs.shape[1], xs.shape[2], xs.device).to(xs.dtype)
        for layer, bias in zip((*self.encoders0, *self.encoders), biases):
            xs = layer(xs, mask, bias)
        return self.after_norm(xs) * mask


class CrossAttentionExport(nn.Module):
    """CrossAttention: queries (B, N, D) over a memory (B, T, D'); ``bias`` (B, 1, 1, T) or None."""

    def __init__(self, attn: nn.Module) -> None:
        super().__init__()
        self.h = attn.h
        self.d = attn.linear_q.out_features
        self.linear_q = attn.linear_q
        self.linear_k_v = attn.linear_k_v
        self.linear_out = attn.linear_out

    def forward(self, x: torch.Tensor, memory: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        k, v = torch.split(self.linear_k_v(memory), [self.d] * 2, dim=-1)
        return self.linear_out(attention(self.linear_q(x), k, v, self.h, self.d // self.h, bias))

    def weights(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        """Attention probabilities (B, heads, N, T) over an unpadded memory."""
        k = self.linear_k_v(memory)[..., : self.d]
        return attention_probs(self.linear_q(x), k, self.h, self.d // self.h, None)


class DecoderLayerExport(nn.Module):
    """DecoderLayerSANM: FFN, FSMN memory (with residual), cross-attention (with residual); parts may be absent."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.feed_forward = layer.feed_forward
        self.norm1 = layer.norm1
        self.self_attn = layer.self_attn
        self.norm2 = getattr(layer, "norm2", None)
        self.src_attn = None if layer.src_attn is None else CrossAttentionExport(layer.src_attn)
        self.norm3 = getattr(layer, "norm3", None)

    def self_part(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """FFN and FSMN memory with the residual (the bare FFN output without FSMN)."""
        y = self.feed_forward(self.norm1(x))
        return y if self.self_attn is None else x + self.self_attn(self.norm2(y), mask)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
        x = self.self_part(x, mask)
        return x if self.src_attn is None else x + self.src_attn(self.norm3(x), memory, bias)


def decoder_layers(decoder: nn.Module, name: str) -> nn.ModuleList:
    """Export wrappers of ``decoder.<name>`` (empty when absent)."""
    return nn.ModuleList(DecoderLayerExport(layer) for layer in (getattr(decoder, name, None) or ()))


def token_mask(token_num: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
    """(B, N, 1) float mask of the valid CIF tokens."""
    return length_mask(token_num, embeds.shape[1])[..., None].to(embeds.dtype)


class DecoderExport(nn.Module):
    """ParaformerSANMDecoder: memory (B, T, D') and its attention bias, CIF embeddings and counts -> hidden, log-probs.

    The log-probabilities are None for a decoder without an output layer (SeACo's hotword decoder).
    """

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoders = decoder_layers(decoder, "decoders")
        self.decoders2 = decoder_layers(decoder, "decoders2")
        self.decoders3 = decoder_layers(decoder, "decoders3")
        self.after_norm = decoder.after_norm
        self.output_layer = decoder.output_layer

    def tail(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``decoders2`` and ``decoders3`` (no cross-attention)."""
        for layer in (*self.decoders2, *self.decoders3):
            x = layer.self_part(x, mask)
        return x

    def forward(
        self, memory: torch.Tensor, bias: Optional[torch.Tensor], embeds: torch.Tensor, token_num: torch.Tensor
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        x = embeds.to(memory.dtype)  # float32 CIF embeddings into a float16 decoder
        mask = token_mask(token_num, x)
        for layer in self.decoders:
            x = layer(x, mask, memory, bias)
        hidden = self.after_norm(self.tail(x, mask))
        if self.output_layer is None:
            return hidden, None
        return hidden, torch.log_softmax(self.output_layer(hidden).float(), dim=-1)


def cumulative_fires(alphas: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) weights -> (integrate value at each step before its fire, fire mask), on a float64 prefix sum.

    A step fires when the prefix sum passes a multiple of ``threshold``; the integrate value
    is the prefix sum minus what earlier fires used up (the sequential loop's running value).
    """
    prefix = torch.cumsum(alphas, dim=1, dtype=torch.float64).float()
    fired = torch.floor(prefix / threshold)  # fires up to and including each step
    before = torch.cat([fired.new_zeros(fired.shape[0], 1), fired[:, :-1]], dim=1)
    return prefix - before * threshold, fired > before


class CifExport(nn.Module):
    """CIF of a V2/V3 predictor: (B, T, D) encoder output -> (embeds (B, N, D), token_num (B,) float).

    N is the largest token count of the batch; embeddings past an item's count are zero.
    """

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, hidden: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred = self.predictor
        valid = length_mask(lens, hidden.shape[1])
        dtype = pred.cif_output.weight.dtype  # float32 whatever the encoder's precision, as in the eager predictor
        hidden = hidden.to(dtype) * valid[..., None].to(dtype)
        alphas = pred.frame_alphas(hidden, valid.float())
        if pred.tail_threshold > 0.0:
            hidden, alphas = pred.with_tail(hidden, alphas, lens)
        token_num = torch.floor(alphas.sum(-1))
        peaks, fire = cumulative_fires(alphas, 1.0)
        remain = torch.where(fire, peaks - 1.0, torch.zeros_like(peaks))  # weight a fire passes to the next token
        firef = fire.float()
        token = torch.cumsum(firef, dim=1) - firef  # (B, T+1) index of the token each step feeds
        k = torch.arange(token_num.max().long(), device=hidden.device).float()[None, :, None]  # (1, N, 1)
        weights = (token[:, None, :] == k) * (alphas - remain)[:, None, :] + (token[:, None, :] + 1 == k) * remain[:, None, :]
        weights = weights * (k < token_num[:, None, None])  # (B, N, T+1)
        return torch.matmul(weights, hidden.float()), token_num


def zero_state(lstm: nn.LSTM, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero (h0, c0) sized from the batch-first input ``x``, so the graph's batch size stays dynamic."""
    h0 = torch.zeros_like(x[:, 0, :1]).expand(-1, lstm.hidden_size)[None].expand(lstm.num_layers, -1, -1).contiguous()
    return h0, h0


def reverse_valid(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Reverse each item's first ``lens`` steps of (B, T, D) in place of them; steps past the length become 0."""
    t = x.shape[1]
    pos = torch.arange(t, device=x.device)[None, :]
    src = (lens[:, None] - 1 - pos).clamp(min=0)  # (B, T)
    gathered = torch.gather(x, 1, src[..., None].expand(-1, -1, x.shape[2]))
    return gathered * (pos < lens[:, None])[..., None].to(x.dtype)


class TimestampHead(nn.Module):
    """CifPredictorV3's upsampled weights with the BiLSTM split into its two directions.

    The eager model packs padded items; here the backward direction runs forward over each
    item's frames reversed in place, which gives the same outputs without packing.
    """

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        blstm = predictor.blstm
        self.upsample_cnn = predictor.upsample_cnn
        self.cif_output2 = predictor.cif_output2
        self.times = predictor.upsample_times
        self.smooth_factor2 = predictor.smooth_factor2
        self.noise_threshold2 = predictor.noise_threshold2
        self.lstm_fw = nn.LSTM(blstm.input_size, blstm.hidden_size, batch_first=True)
        self.lstm_bw = nn.LSTM(blstm.input_size, blstm.hidden_size, batch_first=True)
        for direction, suffix in ((self.lstm_fw, ""), (self.lstm_bw, "_reverse")):
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(direction, name).data.copy_(getattr(blstm, name + suffix).data)

    def forward(self, hidden: torch.Tensor, lens: torch.Tensor, token_num: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D), lengths, token counts -> (alphas (B, 3T) summing to token_num, fire peaks at 0.9999)."""
        hidden = hidden.to(self.cif_output2.weight.dtype)  # the predictor runs in float32
        b, t, d = hidden.shape
        valid = length_mask(lens, t)
        up = self.upsample_cnn((hidden * valid[..., None].to(hidden.dtype)).transpose(1, 2)).transpose(1, 2)
        up_lens = lens * self.times
        forward, _ = self.lstm_fw(up, zero_state(self.lstm_fw, up))
        backward, _ = self.lstm_bw(reverse_valid(up, up_lens), zero_state(self.lstm_bw, up))
        out = torch.cat([forward, reverse_valid(backward, up_lens)], dim=-1)
        alphas = torch.sigmoid(self.cif_output2(out).squeeze(-1).float())
        alphas = torch.relu(alphas * self.smooth_factor2 - self.noise_threshold2)
        alphas = alphas * valid[:, :, None].expand(b, t, self.times).reshape(b, t * self.times).float()
        alphas = alphas * (token_num.float() / alphas.sum(-1))[:, None]
        peaks, _ = cumulative_fires(alphas, 1.0 - 1e-4)
        return alphas, peaks
