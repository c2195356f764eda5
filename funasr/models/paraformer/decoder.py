"""ParaformerSANMDecoder: non-autoregressive SAN-M decoder over CIF acoustic embeddings.

A layer applies the FFN first, then the FSMN memory (its only "self-attention"), then
cross-attention over the memory (encoder output, or hotword embeddings for SeACo).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from funasr.errors import ConfigError
from funasr.models.sanm import (
    DepthwiseConvMemory, Past, attend, depthwise_conv, fsmn_memory, layer_norm, length_mask, with_past,
)
from funasr.registry import register


class DecoderFeedForward(nn.Module):
    """Linear -> ReLU -> (dropout in training) -> LayerNorm -> Linear (no bias)."""

    def __init__(self, size: int, hidden: int, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.w_1 = nn.Linear(size, hidden)
        self.w_2 = nn.Linear(hidden, size, bias=False)
        self.norm = layer_norm(hidden)
        self.dropout_rate = dropout_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.norm(F.dropout(torch.relu(self.w_1(x)), self.dropout_rate, self.training)))


class FSMNAttention(nn.Module):
    """The decoder's self-"attention": an FSMN memory block only (``dropout_rate`` on its output in training)."""

    def __init__(self, size: int, kernel_size: int, sanm_shfit: int = 0, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.fsmn_block = DepthwiseConvMemory(size, kernel_size, sanm_shfit)
        self.dropout_rate = dropout_rate

    def forward(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        return fsmn_memory(self.fsmn_block, x, mask, self.dropout_rate)

    def forward_chunk(self, x: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Causal memory continued across chunks: x (B, N, D) after ``history`` (B, D, kernel-1), the inputs before it.

        Returns the output (B, N, D) and the padded input (B, D, kernel-1+N), whose last kernel-1
        columns up to an item's end are its next history.
        """
        padded = torch.cat([history, x.transpose(1, 2)], dim=2)
        y = depthwise_conv(padded, self.fsmn_block.weight).transpose(1, 2)
        return y + x, padded


class CrossAttention(nn.Module):
    """Multi-head attention of queries over a memory (separate q, fused k|v projections; ``dropout_rate`` on the weights in training)."""

    def __init__(self, n_head: int, size: int, memory_size: Optional[int] = None, dropout_rate: float = 0.0) -> None:
        super().__init__()
        self.h = n_head
        self.dropout_rate = dropout_rate
        self.linear_q = nn.Linear(size, size)
        self.linear_k_v = nn.Linear(memory_size or size, size * 2)
        self.linear_out = nn.Linear(size, size)

    def forward(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """x (B, N, D), memory (B, T, D'), memory_mask (B, T) bool or None -> (B, N, D)."""
        return self.forward_chunk(x, memory, memory_mask, None)[0]

    def forward_chunk(
        self, x: torch.Tensor, memory: torch.Tensor, memory_mask: Optional[torch.Tensor], past: Optional[Past]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``forward`` also attending to ``past`` keys/values; returns the output and the memory's (k, v) (B, T, D)."""
        k, v = self.linear_k_v(memory).chunk(2, dim=-1)
        keys, values, valid = with_past(k, v, memory_mask, past)
        return self.linear_out(attend(self.linear_q(x), keys, values, self.h, valid, self.dropout_rate if self.training else 0.0)), (k, v)

    def weights(self, x: torch.Tensor, memory: torch.Tensor, memory_mask: Optional[torch.Tensor]) -> torch.Tensor:
        """Attention probabilities (B, heads, N, T); masked keys get 0."""
        b, n, d = x.shape
        dk = d // self.h
        q = self.linear_q(x).view(b, n, self.h, dk).transpose(1, 2) * dk**-0.5
        k = self.linear_k_v(memory)[..., :d].reshape(b, -1, self.h, dk).transpose(1, 2)
        scores = q @ k.transpose(-2, -1)
        if memory_mask is not None:
            scores = scores.masked_fill(~memory_mask[:, None, None, :], float("-inf"))
        probs = torch.softmax(scores, dim=-1)
        return probs if memory_mask is None else probs.masked_fill(~memory_mask[:, None, None, :], 0.0)


class DecoderLayerSANM(nn.Module):
    """``x + FSMN(LN2(FFN(LN1(x))))`` then ``+ CrossAttn(LN3(x), memory)``; either part may be absent.

    Without both parts (``decoders3``) the layer is ``FFN(LN1(x))`` with no residual. In training
    ``dropout_rate`` applies to the FSMN and cross-attention outputs before their residuals.
    """

    def __init__(
        self,
        size: int,
        self_attn: Optional[FSMNAttention],
        src_attn: Optional[CrossAttention],
        feed_forward: DecoderFeedForward,
        dropout_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.dropout_rate = dropout_rate
        self.self_attn = self_attn
        self.src_attn = src_attn
        self.feed_forward = feed_forward
        self.norm1 = layer_norm(size)
        if self_attn is not None:
            self.norm2 = layer_norm(size)
        if src_attn is not None:
            self.norm3 = layer_norm(size)

    def self_part(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """FFN and FSMN memory with the residual (or the bare FFN output without FSMN)."""
        y = self.feed_forward(self.norm1(x))
        if self.self_attn is None:
            return y
        return x + F.dropout(self.self_attn(self.norm2(y), mask), self.dropout_rate, self.training)

    def forward(
        self,
        x: torch.Tensor,
        mask: Optional[torch.Tensor],
        memory: torch.Tensor,
        memory_mask: Optional[torch.Tensor],
    ) -> torch.Tensor:
        """x (B, N, D), mask (B, N, 1) float or None, memory (B, T, D), memory_mask (B, T) bool or None."""
        x = self.self_part(x, mask)
        if self.src_attn is not None:
            x = x + F.dropout(self.src_attn(self.norm3(x), memory, memory_mask), self.dropout_rate, self.training)
        return x

    def forward_chunk(
        self, x: torch.Tensor, history: torch.Tensor, memory: torch.Tensor, memory_mask: Optional[torch.Tensor], past: Optional[Past]
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """The layer over one chunk of tokens: FSMN after ``history``, cross-attention also over ``past``.

        Returns the output (B, N, D), the FSMN's padded input (B, D, kernel-1+N) and the memory's (k, v).
        """
        y = self.feed_forward(self.norm1(x))
        memory_out, padded = self.self_attn.forward_chunk(self.norm2(y), history)
        x = x + memory_out
        out, kv = self.src_attn.forward_chunk(self.norm3(x), memory, memory_mask, past)
        return x + out, padded, kv


def masks(lens: torch.Tensor, length: int, dtype: torch.dtype) -> tuple[Optional[torch.Tensor], Optional[torch.Tensor]]:
    """(float (B, L, 1), bool (B, L)) valid-position masks, or (None, None) when nothing is padded."""
    if bool((lens >= length).all()):
        return None, None
    valid = length_mask(lens, length)
    return valid[..., None].to(dtype), valid


def decoder_layer(
    size: int,
    heads: int,
    units: int,
    kernel_size: int,
    sanm_shfit: int,
    fsmn: bool,
    cross: bool,
    dropout: tuple[float, float, float] = (0.0, 0.0, 0.0),
) -> DecoderLayerSANM:
    """One SAN-M decoder layer with the parts asked for; ``dropout`` = (outputs and FFN, FSMN, cross-attention weights)."""
    rate, self_rate, src_rate = dropout
    return DecoderLayerSANM(
        size,
        FSMNAttention(size, kernel_size, sanm_shfit, self_rate) if fsmn else None,
        CrossAttention(heads, size, dropout_rate=src_rate) if cross else None,
        DecoderFeedForward(size, units, rate),
        rate,
    )


@register()
class ParaformerSANMDecoder(nn.Module):
    """``decoders`` (FSMN + cross-attention) -> ``decoders2`` (FSMN only) -> ``decoders3`` (FFN) -> norm -> logits."""

    def __init__(
        self,
        vocab_size: int,
        encoder_output_size: int,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        att_layer_num: int = 6,
        kernel_size: int = 21,
        sanm_shfit: int = 0,
        input_layer: str = "embed",
        use_output_layer: bool = True,
        wo_input_layer: bool = False,
        normalize_before: bool = True,
        concat_after: bool = False,
        dropout_rate: float = 0.1,
        self_attention_dropout_rate: float = 0.0,
        src_attention_dropout_rate: float = 0.0,
        **_: Any,
    ) -> None:
        super().__init__()
        if not normalize_before or concat_after:
            raise ConfigError("ParaformerSANMDecoder supports normalize_before=true, concat_after=false only")
        if input_layer != "embed" and not wo_input_layer:
            raise ConfigError(f"ParaformerSANMDecoder input_layer {input_layer!r} is not supported (only 'embed')")
        size = encoder_output_size
        self.att_layer_num = att_layer_num
        if not wo_input_layer:
            self.embed = nn.Sequential(nn.Embedding(vocab_size, size))
        self.after_norm = layer_norm(size)
        self.output_layer = nn.Linear(size, vocab_size) if use_output_layer else None

        dropout = (dropout_rate, self_attention_dropout_rate, src_attention_dropout_rate)  # training only

        def layers(n: int, cross: bool, shift: int) -> nn.ModuleList:
            return nn.ModuleList(
                [decoder_layer(size, attention_heads, linear_units, kernel_size, shift, True, cross, dropout) for _ in range(n)]
            )

        self.decoders = layers(att_layer_num, True, sanm_shfit)
        self.decoders2 = layers(num_blocks - att_layer_num, False, 0) if num_blocks > att_layer_num else None
        self.decoders3 = nn.ModuleList([decoder_layer(size, attention_heads, linear_units, kernel_size, 0, False, False, dropout)])

    def hidden(
        self, memory: torch.Tensor, memory_lens: torch.Tensor, embeds: torch.Tensor, token_num: torch.Tensor
    ) -> torch.Tensor:
        """Memory (B, T, D') and lengths, CIF embeddings (B, N, D) and counts -> normed hidden (B, N, D)."""
        x, mask, _ = self.cross_layers(self.decoders, memory, memory_lens, embeds, token_num)
        return self.after_norm(self.tail(x, mask))

    def cross_layers(
        self, layers: nn.ModuleList, memory: torch.Tensor, memory_lens: torch.Tensor, embeds: torch.Tensor, token_num: torch.Tensor
    ) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
        """``layers`` (of ``decoders``) over the CIF embeddings -> (x (B, N, D), its mask (B, N, 1), memory mask (B, T))."""
        mask, _ = masks(token_num, embeds.shape[1], embeds.dtype)
        _, memory_mask = masks(memory_lens, memory.shape[1], memory.dtype)
        x = embeds
        for layer in layers:
            x = layer(x, mask, memory, memory_mask)
        return x, mask, memory_mask

    def tail(self, x: torch.Tensor, mask: Optional[torch.Tensor]) -> torch.Tensor:
        """``decoders2`` and ``decoders3`` (no cross-attention)."""
        for layer in self.decoders2 or ():
            x = layer.self_part(x, mask)
        for layer in self.decoders3:
            x = layer.self_part(x, mask)
        return x

    def forward(
        self, memory: torch.Tensor, memory_lens: torch.Tensor, embeds: torch.Tensor, token_num: torch.Tensor
    ) -> torch.Tensor:
        """Logits (B, N, vocab) (or the hidden state when there is no output layer)."""
        h = self.hidden(memory, memory_lens, embeds, token_num)
        return h if self.output_layer is None else self.output_layer(h)

    def forward_chunk(
        self,
        memory: torch.Tensor,
        memory_mask: Optional[torch.Tensor],
        embeds: torch.Tensor,
        histories: list[torch.Tensor],
        pasts: list[Optional[Past]],
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[tuple[torch.Tensor, torch.Tensor]]]:
        """One chunk of CIF embeddings (B, N, D) over the chunk's memory (B, T, D) -> logits (B, N, vocab).

        Per ``decoders`` layer: ``histories`` (B, D, kernel-1) are the FSMN inputs before this chunk and
        ``pasts`` the cross-attention keys/values of earlier memory (or None). Also returns each
        layer's FSMN padded input and memory (k, v), from which the caller keeps what it needs.
        Positions past an item's token count may hold anything: the FSMN is causal, so they never
        reach the valid ones.
        """
        x = embeds
        padded_inputs, kvs = [], []
        for layer, history, past in zip(self.decoders, histories, pasts):
            x, padded, kv = layer.forward_chunk(x, history, memory, memory_mask, past)
            padded_inputs.append(padded)
            kvs.append(kv)
        for layer in self.decoders3:
            x = layer.self_part(x, None)
        return self.output_layer(self.after_norm(x)), padded_inputs, kvs

    def hotword_attention(
        self, memory: torch.Tensor, memory_lens: torch.Tensor, embeds: torch.Tensor, token_num: torch.Tensor
    ) -> torch.Tensor:
        """Cross-attention probabilities of the last ``decoders`` layer (B, heads, N, T), for hotword filtering."""
        x, mask, memory_mask = self.cross_layers(self.decoders[:-1], memory, memory_lens, embeds, token_num)
        last = self.decoders[-1]
        x = last.self_part(x, mask)
        return last.src_attn.weights(last.norm3(x), memory, memory_mask)
