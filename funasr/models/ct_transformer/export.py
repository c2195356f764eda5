"""Export graph of CT-Transformer punctuation: ``inputs`` i32 (B, L), ``text_lengths`` i32 (B,) -> ``logits`` (B, L, classes)."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from funasr.export.graph import ExportGraph
from funasr.export.layers import EncoderExport
from funasr.models.ct_transformer.family import INPUTS, LOGITS, TEXT_LENGTHS


class CTTransformerExport(nn.Module):
    """Embedding -> SAN-M encoder (masked by the lengths) -> class logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.embed = model.embed
        self.encoder = EncoderExport(model.encoder)
        self.decoder = model.decoder

    def forward(self, inputs: torch.Tensor, text_lengths: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(self.embed(inputs.long()), text_lengths.long())).float()


def graphs(model: nn.Module, frontend: Any = None) -> list[ExportGraph]:
    """``model.onnx`` of CTTransformer (no frontend)."""
    example = (torch.randint(1, model.embed.num_embeddings, (2, 20), dtype=torch.int32), torch.tensor([8, 20], dtype=torch.int32))
    axes = {
        INPUTS: {0: "batch_size", 1: "text_length"},
        TEXT_LENGTHS: {0: "batch_size"},
        LOGITS: {0: "batch_size", 1: "text_length"},
    }
    return [ExportGraph("model", CTTransformerExport(model), example, [INPUTS, TEXT_LENGTHS], [LOGITS], axes)]
