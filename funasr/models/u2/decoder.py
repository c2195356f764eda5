"""WeNet's attention decoders: ``transformer`` (left to right) and ``bitransformer`` (plus right to left).

Parameter names equal WeNet's checkpoint keys under ``decoder.`` (``decoder.left_decoder.`` and
``decoder.right_decoder.`` for the bidirectional one). Outputs are logits; callers take log_softmax.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from funasr.models.u2.encoder import FeedForward, MultiHeadedAttention, sinusoids


class DecoderLayer(nn.Module):
    """Masked self-attention, cross-attention to the encoder, FF; pre-norm residuals (norm1..3)."""

    def __init__(self, d: int, heads: int, hidden: int, eps: float = 1e-5, dropout: float = 0.0, self_att_dropout: float = 0.0,
                 src_att_dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(heads, d, dropout=self_att_dropout)
        self.src_attn = MultiHeadedAttention(heads, d, dropout=src_att_dropout)
        self.feed_forward = FeedForward(d, hidden, "relu", dropout)
        self.norm1, self.norm2, self.norm3 = (nn.LayerNorm(d, eps=eps) for _ in range(3))
        self.dropout = nn.Dropout(dropout)  # on each residual branch (training only)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor, memory_mask: torch.Tensor) -> torch.Tensor:
        """(N, L, d), self mask (N, L, L), memory (N, T, d), memory mask (N, 1, T) -> (N, L, d)."""
        h = self.norm1(x)
        x = x + self.dropout(self.self_attn(h, h, h, mask)[0])
        h = self.norm2(x)
        x = x + self.dropout(self.src_attn(h, memory, memory, memory_mask)[0])
        return x + self.dropout(self.feed_forward(self.norm3(x)))


class TransformerDecoder(nn.Module):
    """Token embedding x sqrt(d) + positions -> blocks -> after_norm -> output_layer (logits)."""

    def __init__(self, vocab_size: int, encoder_output_size: int, attention_heads: int = 4, linear_units: int = 2048,
                 num_blocks: int = 6, dropout_rate: float = 0.1, positional_dropout_rate: float = 0.1,
                 self_attention_dropout_rate: float = 0.0, src_attention_dropout_rate: float = 0.0, **_: object) -> None:
        super().__init__()
        d = encoder_output_size
        self.d = d
        self.embed = nn.Sequential(nn.Embedding(vocab_size, d))
        self.pos_dropout = nn.Dropout(positional_dropout_rate)
        self.decoders = nn.ModuleList(
            DecoderLayer(d, attention_heads, linear_units, 1e-5, dropout_rate, self_attention_dropout_rate, src_attention_dropout_rate)
            for _ in range(num_blocks)
        )
        self.after_norm = nn.LayerNorm(d, eps=1e-5)
        self.output_layer = nn.Linear(d, vocab_size)

    def forward(self, memory: torch.Tensor, memory_mask: torch.Tensor, ys: torch.Tensor, ys_lens: torch.Tensor) -> torch.Tensor:
        """Encoder output (N, T, d), its mask (N, 1, T), token inputs (N, L) and their lengths (N,) -> logits (N, L, V)."""
        length = ys.size(1)
        pad = torch.arange(length, device=ys.device).unsqueeze(0) < ys_lens.unsqueeze(1)  # (N, L)
        causal = torch.ones(length, length, dtype=torch.bool, device=ys.device).tril()
        mask = pad.unsqueeze(1) & causal.unsqueeze(0)  # (N, L, L)
        x = self.pos_dropout(self.embed(ys) * math.sqrt(self.d) + sinusoids(ys.new_zeros(1), length, self.d).to(memory.dtype))
        for layer in self.decoders:
            x = layer(x, mask, memory, memory_mask)
        return self.output_layer(self.after_norm(x))


class BiTransformerDecoder(nn.Module):
    """A left-to-right and a right-to-left TransformerDecoder over the same encoder output."""

    def __init__(self, vocab_size: int, encoder_output_size: int, r_num_blocks: int = 0, num_blocks: int = 6,
                 **conf: object) -> None:
        super().__init__()
        self.left_decoder = TransformerDecoder(vocab_size, encoder_output_size, num_blocks=num_blocks, **conf)  # type: ignore[arg-type]
        self.right_decoder = TransformerDecoder(vocab_size, encoder_output_size, num_blocks=r_num_blocks, **conf)  # type: ignore[arg-type]

    def forward(self, memory: torch.Tensor, memory_mask: torch.Tensor, ys: torch.Tensor, ys_lens: torch.Tensor,
                r_ys: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Left-to-right logits, and right-to-left logits of ``r_ys`` when given."""
        left = self.left_decoder(memory, memory_mask, ys, ys_lens)
        right = self.right_decoder(memory, memory_mask, r_ys, ys_lens) if r_ys is not None else None
        return left, right
