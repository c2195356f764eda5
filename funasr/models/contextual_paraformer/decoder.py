"""ContextualParaformerDecoder: the SAN-M decoder whose last attention layer also attends to hotwords."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from funasr.models.paraformer.decoder import CrossAttention, ParaformerSANMDecoder, decoder_layer, masks
from funasr.models.sanm import layer_norm
from funasr.registry import register


class ContextualBiasDecoder(nn.Module):
    """LayerNorm then cross-attention over the hotword embeddings (no residual)."""

    def __init__(self, size: int, heads: int) -> None:
        super().__init__()
        self.src_attn = CrossAttention(heads, size)
        self.norm3 = layer_norm(size)

    def forward(self, x: torch.Tensor, hotwords: torch.Tensor) -> torch.Tensor:
        return self.src_attn(self.norm3(x), hotwords, None)


@register()
class ContextualParaformerDecoder(ParaformerSANMDecoder):
    """``decoders`` (att_layer_num - 1) -> ``last_decoder`` + ``bias_decoder`` merged by ``bias_output`` -> tail."""

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
        **kwargs: Any,
    ) -> None:
        # The parent builds embed, norms, output layer, the first att_layer_num - 1 layers and decoders3.
        super().__init__(
            vocab_size,
            encoder_output_size,
            attention_heads=attention_heads,
            linear_units=linear_units,
            num_blocks=att_layer_num - 1,
            att_layer_num=att_layer_num - 1,
            kernel_size=kernel_size,
            sanm_shfit=sanm_shfit,
            **kwargs,
        )
        size = encoder_output_size
        self.bias_decoder = ContextualBiasDecoder(size, attention_heads)
        self.bias_output = nn.Conv1d(size * 2, size, 1, bias=False)
        self.last_decoder = decoder_layer(size, attention_heads, linear_units, kernel_size, sanm_shfit, True, True)
        if num_blocks > att_layer_num:
            self.decoders2 = nn.ModuleList(
                [
                    decoder_layer(size, attention_heads, linear_units, kernel_size, 0, True, False)
                    for _ in range(num_blocks - att_layer_num)
                ]
            )

    def forward(
        self,
        memory: torch.Tensor,
        memory_lens: torch.Tensor,
        embeds: torch.Tensor,
        token_num: torch.Tensor,
        hotwords: torch.Tensor,
        clas_scale: float = 1.0,
    ) -> torch.Tensor:
        """Logits (B, N, vocab); ``hotwords`` (B, H, D) hotword embeddings."""
        mask, _ = masks(token_num, embeds.shape[1], embeds.dtype)
        _, memory_mask = masks(memory_lens, memory.shape[1], memory.dtype)
        x = embeds
        for layer in self.decoders:
            x = layer(x, mask, memory, memory_mask)
        last = self.last_decoder
        x_self = last.self_part(x, mask)
        x_src = last.src_attn(last.norm3(x_self), memory, memory_mask)
        cx = self.bias_decoder(x_self, hotwords)
        x = x_self + F.linear(torch.cat([x_src, cx * clas_scale], dim=-1), self.bias_output.weight[..., 0])
        return self.output_layer(self.after_norm(self.tail(x, mask)))
