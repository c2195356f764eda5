"""Export graphs of ContextualParaformer: ``model`` takes ``bias_embed`` (B, H, D); ``model_eb`` encodes hotwords."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from funasr.export.graph import ExportGraph
from funasr.export.layers import CrossAttentionExport, DecoderExport, DecoderLayerExport, token_mask
from funasr.models.paraformer.export import ParaformerExport, hotword_graphs


class ContextualDecoderExport(DecoderExport):
    """ContextualParaformerDecoder: the last attention layer also attends to the hotwords (``clas_scale`` 1)."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__(decoder)
        self.last_decoder = DecoderLayerExport(decoder.last_decoder)
        self.bias_decoder = HotwordAttention(decoder.bias_decoder)
        self.bias_output = decoder.bias_output

    def forward(
        self, memory: torch.Tensor, bias: torch.Tensor, embeds: torch.Tensor, token_num: torch.Tensor, hotwords: torch.Tensor
    ) -> torch.Tensor:
        x = embeds.to(memory.dtype)
        mask = token_mask(token_num, x)
        for layer in self.decoders:
            x = layer(x, mask, memory, bias)
        last = self.last_decoder
        x_self = last.self_part(x, mask)
        x_src = last.src_attn(last.norm3(x_self), memory, bias)
        cx = self.bias_decoder(x_self, hotwords)
        x = x_self + F.linear(torch.cat([x_src, cx], dim=-1), self.bias_output.weight[..., 0])
        return torch.log_softmax(self.output_layer(self.after_norm(self.tail(x, mask))).float(), dim=-1)


class HotwordAttention(nn.Module):
    """ContextualBiasDecoder: LayerNorm then cross-attention over the hotword embeddings (no residual)."""

    def __init__(self, bias_decoder: nn.Module) -> None:
        super().__init__()
        self.src_attn = CrossAttentionExport(bias_decoder.src_attn)
        self.norm3 = bias_decoder.norm3

    def forward(self, x: torch.Tensor, hotwords: torch.Tensor) -> torch.Tensor:
        return self.src_attn(self.norm3(x), hotwords, None)


class ContextualParaformerExport(ParaformerExport):
    """Contextual Paraformer: ``bias_embed`` rows are the hotwords every utterance attends to."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.decoder = ContextualDecoderExport(model.decoder)

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, bias_embed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        enc, lens, memory_bias, embeds, token_num = self.encode_and_fire(speech, speech_lengths)
        log_probs = self.decoder(enc, memory_bias, embeds, token_num, bias_embed.to(enc.dtype))
        return self.outputs(log_probs, enc, lens, token_num)


def graphs(model: nn.Module, frontend: Any) -> list[ExportGraph]:
    """``model`` (with ``bias_embed``) and ``model_eb`` of ContextualParaformer."""
    embed_layer = model.decoder.embed if model.use_decoder_embedding else model.bias_embed
    return hotword_graphs(model, frontend, ContextualParaformerExport(model), embed_layer)
