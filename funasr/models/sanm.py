"""SAN-M: self-attention with an FSMN memory block, and the SANMEncoder built from it.

Shared by the Paraformer family (speech features in, 560 -> 512) and CT-Transformer
punctuation (word embeddings in, input_size == output_size). Parameter names equal the
released checkpoints' keys (``encoders0.0.self_attn.linear_q_k_v.weight``, ...).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from funasr.errors import ConfigError
from funasr.registry import register

LAYER_NORM_EPS = 1e-12


def layer_norm(size: int) -> nn.LayerNorm:
    """The reference's LayerNorm (eps 1e-12)."""
    return nn.LayerNorm(size, eps=LAYER_NORM_EPS)


def length_mask(lens: torch.Tensor, max_len: int) -> torch.Tensor:
    """(B,) lengths -> (B, max_len) bool, True on valid positions."""
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


def sinusoidal_encoding(length: int, depth: int, device: torch.device) -> torch.Tensor:
    """(length, depth) float32 table: positions 1..length, all sines then all cosines."""
    positions = torch.arange(1, length + 1, device=device, dtype=torch.float32)
    increment = torch.log(torch.tensor([10000.0], device=device)) / (depth / 2 - 1)
    inv_timescales = torch.exp(torch.arange(depth // 2, device=device, dtype=torch.float32) * -increment)
    scaled = positions[:, None] * inv_timescales[None, :]
    return torch.cat([torch.sin(scaled), torch.cos(scaled)], dim=1)


class SinusoidalPositionEncoder(nn.Module):
    """Adds the reference's sinusoidal position encoding (no parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self._table: Optional[torch.Tensor] = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D) with the encoding of positions 1..T added."""
        t, d = x.shape[1], x.shape[2]
        table = self._table
        if table is None or table.shape[0] < t or table.shape[1] != d or table.device != x.device:
            table = sinusoidal_encoding(max(t, 512), d, x.device)
            self._table = table
        return x + table[:t].to(x.dtype)


class FeedForward(nn.Module):
    """Position-wise FFN: Linear -> ReLU -> (dropout in training) -> Linear."""

    def __init__(self, size: int, hidden: int, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.w_1 = nn.Linear(size, hidden)
        self.w_2 = nn.Linear(hidden, size)
        self.dropout_rate = dropout_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(F.dropout(torch.relu(self.w_1(x)), self.dropout_rate, self.training))


class DepthwiseConvMemory(nn.Module):
    """SAN-M's memory: a depthwise Conv1d over time (no bias), zero padded ``left``/``right``.

    Stored as ``fsmn_block`` (the checkpoint key); unrelated to the FSMN-VAD memory block.
    """

    def __init__(self, size: int, kernel_size: int, sanm_shfit: int = 0) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(size, 1, kernel_size))
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self.left = (kernel_size - 1) // 2 + max(sanm_shfit, 0)
        self.right = kernel_size - 1 - self.left

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D) depthwise convolution over T."""
        return depthwise_conv(x.transpose(1, 2), self.weight, self.left, self.right).transpose(1, 2)


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, left: int = 0, right: int = 0) -> torch.Tensor:
    """(B, D, T) -> (B, D, T + left + right - K + 1): each channel convolved with its kernel in ``weight`` (D, 1, K).

    Exported as a 1 x K two-dimensional convolution: the same sums, in the form onnxruntime's depthwise
    kernels take (it runs a grouped 1-D convolution group by group, ~7x slower for SAN-M's 512 channels).
    PyTorch keeps the 1-D form, whose half-precision CPU kernel accumulates as float32 does.
    """
    if left != right:
        x, left = F.pad(x, (left, right)), 0
    if not torch.onnx.is_in_onnx_export():
        return F.conv1d(x, weight, padding=left, groups=weight.shape[0])
    return F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), padding=(0, left), groups=weight.shape[0]).squeeze(2)


def fsmn_memory(block: DepthwiseConvMemory, x: torch.Tensor, mask: Optional[torch.Tensor], dropout: float = 0.0) -> torch.Tensor:
    """FSMN memory with residual: ``(conv(x·m) + x·m)·m``; ``mask`` (B, T, 1) or None; ``dropout`` before the mask in training."""
    if mask is not None:
        x = x * mask
    y = F.dropout(block(x) + x, dropout, block.training)
    return y if mask is None else y * mask


Past = tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]  # keys, values (B, L, D) and their mask (B, L) bool (None: all valid)


def with_past(
    k: torch.Tensor, v: torch.Tensor, key_mask: Optional[torch.Tensor], past: Optional[Past]
) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
    """Keys, values (B, L+T, D) and key mask of ``past`` put before the chunk's own (``past`` None: the chunk's alone)."""
    if past is None or past[0].shape[1] == 0:
        return k, v, key_mask
    pk, pv, pmask = past
    if pmask is None and key_mask is None:
        valid = None
    else:
        ones = torch.ones(k.shape[:2], dtype=torch.bool, device=k.device)
        pones = torch.ones(pk.shape[:2], dtype=torch.bool, device=k.device)
        valid = torch.cat([pones if pmask is None else pmask, ones if key_mask is None else key_mask], dim=1)
    return torch.cat([pk, k], dim=1), torch.cat([pv, v], dim=1), valid


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int, key_mask: Optional[torch.Tensor], dropout: float = 0.0
) -> torch.Tensor:
    """Scaled dot-product attention over ``heads``: q (B, Tq, D), k/v (B, Tk, D) -> (B, Tq, D).

    ``key_mask``: bool, True where attention is allowed: (B, Tk) for every query alike, (B, Tq, Tk)
    per query, or None when every key is valid. ``dropout``: on the attention weights (training).
    """
    b, tq, d = q.shape
    tk = k.shape[1]
    qh = q.view(b, tq, heads, d // heads).transpose(1, 2)
    kh = k.view(b, tk, heads, d // heads).transpose(1, 2)
    vh = v.view(b, tk, heads, d // heads).transpose(1, 2)
    attn_mask = None if key_mask is None else key_mask[:, None] if key_mask.dim() == 3 else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=attn_mask, dropout_p=dropout)
    return out.transpose(1, 2).reshape(b, tq, d)


class MultiHeadedAttentionSANM(nn.Module):
    """Self-attention (fused q|k|v projection) plus an FSMN memory on v; ``dropout_rate`` on both in training."""

    def __init__(self, n_head: int, in_feat: int, n_feat: int, kernel_size: int, sanm_shfit: int = 0, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.dropout_rate = dropout_rate
        if n_feat % n_head:
            raise ConfigError(f"attention size {n_feat} is not divisible by {n_head} heads")
        self.h = n_head
        self.linear_out = nn.Linear(n_feat, n_feat)
        self.linear_q_k_v = nn.Linear(in_feat, n_feat * 3)
        self.fsmn_block = DepthwiseConvMemory(n_feat, kernel_size, sanm_shfit)

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """x (B, T, in) -> (B, T, n_feat); ``mask`` (B, T, 1) float, ``key_mask`` (B, T) or (B, T, T) bool (None: no padding)."""
        return self.forward_chunk(x, mask, key_mask, None)[0]

    def forward_chunk(
        self, x: torch.Tensor, mask: Optional[torch.Tensor], key_mask: Optional[torch.Tensor], past: Optional["Past"]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``forward`` whose queries also attend to ``past`` keys/values; returns the output and this chunk's (k, v) (B, T, n_feat)."""
        q, k, v = self.linear_q_k_v(x).chunk(3, dim=-1)
        p = self.dropout_rate if self.training else 0.0
        memory = fsmn_memory(self.fsmn_block, v, mask, p)
        keys, values, valid = with_past(k, v, key_mask, past)
        return self.linear_out(attend(q, keys, values, self.h, valid, p)) + memory, (k, v)


class EncoderLayerSANM(nn.Module):
    """Pre-LN layer: SAN-M (residual only when in == out) then FFN with residual; ``dropout_rate`` on both outputs in training."""

    def __init__(
        self, in_size: int, size: int, self_attn: MultiHeadedAttentionSANM, feed_forward: FeedForward, dropout_rate: float = 0.0
    ) -> None:
        super().__init__()
        self.dropout_rate = dropout_rate
        self.self_attn = self_attn
        self.feed_forward = feed_forward
        self.norm1 = layer_norm(in_size)
        self.norm2 = layer_norm(size)
        self.residual = in_size == size

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor], key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        return self.forward_chunk(x, mask, key_mask, None)[0]

    def forward_chunk(
        self, x: torch.Tensor, mask: Optional[torch.Tensor], key_mask: Optional[torch.Tensor], past: Optional["Past"]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The layer with attention also over ``past``; returns the output and the attention's (k, v) of this chunk."""
        y, kv = self.self_attn.forward_chunk(self.norm1(x), mask, key_mask, past)
        y = F.dropout(y, self.dropout_rate, self.training)
        x = x + y if self.residual else y
        return x + F.dropout(self.feed_forward(self.norm2(x)), self.dropout_rate, self.training), kv


@register()
class SANMEncoder(nn.Module):
    """Position encoding -> ``encoders0`` (in -> out) -> ``encoders`` (out -> out) -> ``after_norm``.

    Takes ``encoder_conf`` as keyword arguments. ``dropout_rate`` (sublayer outputs, FFN inside) and
    ``attention_dropout_rate`` (attention weights, FSMN memory) act in training only, as the
    reference's (which has no position-encoding dropout with ``input_layer: pe``).
    """

    def __init__(
        self,
        input_size: int,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        input_layer: Optional[str] = "pe",
        normalize_before: bool = True,
        concat_after: bool = False,
        kernel_size: int = 11,
        sanm_shfit: int = 0,
        selfattention_layer_type: str = "sanm",
        positionwise_layer_type: str = "linear",
        dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        **_: Any,
    ) -> None:
        super().__init__()
        if input_layer not in ("pe", None):
            raise ConfigError(f"SANMEncoder input_layer {input_layer!r} is not supported (only 'pe')")
        if not normalize_before or concat_after:
            raise ConfigError("SANMEncoder supports normalize_before=true, concat_after=false only")
        if selfattention_layer_type != "sanm" or positionwise_layer_type != "linear":
            raise ConfigError(
                f"SANMEncoder supports selfattention_layer_type 'sanm' and positionwise_layer_type 'linear' "
                f"(got {selfattention_layer_type!r}, {positionwise_layer_type!r})"
            )
        self._output_size = output_size
        self.embed = SinusoidalPositionEncoder() if input_layer == "pe" else None

        def layer(in_size: int) -> EncoderLayerSANM:
            return EncoderLayerSANM(
                in_size,
                output_size,
                MultiHeadedAttentionSANM(attention_heads, in_size, output_size, kernel_size, sanm_shfit, attention_dropout_rate),
                FeedForward(output_size, linear_units, dropout_rate),
                dropout_rate,
            )

        self.encoders0 = nn.ModuleList([layer(input_size)])
        self.encoders = nn.ModuleList([layer(output_size) for _ in range(num_blocks - 1)])
        self.after_norm = layer_norm(output_size)

    def output_size(self) -> int:
        """Width of the encoder output."""
        return self._output_size

    def forward(self, xs: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xs (B, T, input_size), lens (B,) -> (out (B, T, output_size), out_lens (B,))."""
        t = xs.shape[1]
        if bool((lens >= t).all()):
            mask = key_mask = None
        else:
            key_mask = length_mask(lens, t)
            mask = key_mask[:, :, None].to(xs.dtype)
        return self.run_layers(xs, mask, [key_mask] * (len(self.encoders0) + len(self.encoders))), lens

    def run_layers(self, xs: torch.Tensor, mask: Optional[torch.Tensor], attn_masks: list[Optional[torch.Tensor]]) -> torch.Tensor:
        """Scale, position-encode and run every layer with its own attention mask (see ``attend``): (B, T, in) -> (B, T, out).

        ``mask`` (B, T, 1) float marks the valid frames (None: all are); the output is zero past them.
        """
        xs = xs * self._output_size**0.5
        if self.embed is not None:
            xs = self.embed(xs)
        for layer, attn_mask in zip([*self.encoders0, *self.encoders], attn_masks):
            xs = layer(xs, mask, attn_mask)
        xs = self.after_norm(xs)
        return xs if mask is None else xs * mask
