"""Export graph of realtime CT-Transformer punctuation, with FunASR's runtime contract.

``inputs`` i32 (B, L), ``text_lengths`` i32 (B,), ``vad_masks`` and ``sub_masks`` f32 (B, 1, L, L)
(1 = may attend) -> ``logits`` (B, L, classes). ``sub_masks`` masks every encoder layer but the
last (the PyTorch model's causal mask), ``vad_masks`` the last.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from funasr.export.graph import ExportGraph
from funasr.export.layers import EncoderExport, key_bias
from funasr.models.ct_transformer.export import CTTransformerExport
from funasr.models.ct_transformer_streaming.family import GRAPH_INPUTS, GRAPH_OUTPUTS, INPUTS, LOGITS, SUB_MASKS, TEXT_LENGTHS, VAD_MASKS
from funasr.models.sanm import length_mask

MASKED = -10000.0  # the additive score of a masked pair, as in FunASR's export


class VadEncoderExport(EncoderExport):
    """SANMVadEncoder with its attention masks as inputs."""

    def forward(self, xs: torch.Tensor, lens: torch.Tensor, vad_masks: torch.Tensor, sub_masks: torch.Tensor) -> torch.Tensor:
        valid = length_mask(lens, xs.shape[1])  # (B, T)
        pad = key_bias(valid, xs.dtype)  # (B, 1, 1, T)
        causal, vad = ((1 - m.to(xs.dtype)) * MASKED + pad for m in (sub_masks, vad_masks))  # (B, 1, T, T)
        layers = len(self.encoders0) + len(self.encoders)
        return self.run_layers(xs, valid[..., None].to(xs.dtype), [causal] * (layers - 1) + [vad if len(self.encoders) else causal])


class CTTransformerStreamingExport(CTTransformerExport):
    """Embedding -> SANMVadEncoder (masks given) -> class logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        self.encoder = VadEncoderExport(model.encoder)

    def forward(self, inputs: torch.Tensor, text_lengths: torch.Tensor, vad_masks: torch.Tensor, sub_masks: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(self.embed(inputs.long()), text_lengths.long(), vad_masks, sub_masks)).float()


def graphs(model: nn.Module, frontend: Any = None) -> list[ExportGraph]:
    """``model.onnx`` of CTTransformerStreaming (no frontend)."""
    length = 20
    causal = torch.ones(length, length).tril()
    vad = torch.ones(length, length)
    vad[:4, 6:] = 0  # the VAD mask of 6 carried words
    example = (
        torch.randint(1, model.embed.num_embeddings, (2, length), dtype=torch.int32),
        torch.tensor([12, length], dtype=torch.int32),
        vad.expand(2, 1, length, length).contiguous(),
        causal.expand(2, 1, length, length).contiguous(),
    )
    square = {0: "batch_size", 2: "text_length", 3: "text_length"}
    axes = {
        INPUTS: {0: "batch_size", 1: "text_length"},
        TEXT_LENGTHS: {0: "batch_size"},
        VAD_MASKS: square,
        SUB_MASKS: square,
        LOGITS: {0: "batch_size", 1: "text_length"},
    }
    return [ExportGraph("model", CTTransformerStreamingExport(model), example, list(GRAPH_INPUTS), list(GRAPH_OUTPUTS), axes)]
