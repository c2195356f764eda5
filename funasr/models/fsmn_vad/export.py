"""Export graph of FSMN-VAD: ``speech`` (B, T, 400) and FSMN caches ``in_cache0..`` (B, 128, 19, 1) -> scores and caches."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from funasr.export.graph import ExportGraph
from funasr.models.fsmn_vad.family import IN_CACHE, LOGITS, OUT_CACHE, SPEECH


class FsmnVADExport(nn.Module):
    """The FSMN network with the reference's cache layout (B, proj_dim, context, 1) per layer."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, speech: torch.Tensor, *in_cache: torch.Tensor) -> tuple[torch.Tensor, ...]:
        dtype = self.encoder.in_linear1.linear.weight.dtype
        caches = [c.squeeze(3).transpose(1, 2).to(dtype) for c in in_cache]  # (B, D, C, 1) -> (B, C, D); not a Gather
        scores, new = self.encoder(speech.to(dtype), caches)
        return (scores.float(), *[c.transpose(1, 2)[..., None].float() for c in new])


def graphs(model: nn.Module, frontend: Any = None) -> list[ExportGraph]:
    """``model.onnx`` of FsmnVADStreaming (the feature size comes from the network)."""
    fsmn = model.encoder
    n = len(fsmn.fsmn)
    block = fsmn.fsmn[0].fsmn_block
    feat_dim = fsmn.in_linear1.linear.in_features
    caches = tuple(torch.zeros(1, block.conv_left.weight.shape[0], block.context, 1) for _ in range(n))
    inputs = (torch.randn(1, 30, feat_dim), *caches)
    in_names = [SPEECH] + [IN_CACHE.format(i) for i in range(n)]
    out_names = [LOGITS] + [OUT_CACHE.format(i) for i in range(n)]
    batch = {0: "batch_size"}  # many streams per call (FunASR's graph has a fixed batch of 1)
    axes = {SPEECH: {**batch, 1: "feats_length"}, LOGITS: {**batch, 1: "feats_length"},
            **{name: batch for name in in_names[1:] + out_names[1:]}}
    return [ExportGraph("model", FsmnVADExport(model), inputs, in_names, out_names, axes)]
