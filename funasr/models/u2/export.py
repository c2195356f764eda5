"""Export graphs of the U2 family as WeNet's runtime reads them (``wenet/bin/export_onnx_cpu.py``, chunk 16, all left chunks).

``encoder`` = ``forward_chunk``: ``chunk`` f32 (1, T, 80) raw fbank, ``offset`` i64 scalar (encoder
frames emitted), ``att_cache`` f32 (L, H, T_CACHE, 2 d_k) (T_CACHE = 0 at the start), ``cnn_cache``
f32 (L, 1, d, K-1) (zeros at the start) -> ``output`` (1, C, d), ``r_att_cache`` (every key so far),
``r_cnn_cache``. The caller keeps as many cached keys as it wants (all, or the last left chunks).
``ctc``: ``hidden`` (1, T, d) -> ``probs`` (1, T, V) log-probabilities.
``decoder``: ``hyps`` i64 (N, L) ``<sos>`` + hyp padded with ``<eos>``, ``hyps_lens`` i64 (N,),
``encoder_out`` (1, T, d) -> ``score`` / ``r_score`` (N, L, V) log-probabilities of the left-to-right
and right-to-left decoders (``r_score`` is 0 for U2 models without one).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from funasr.export.graph import ExportGraph
from funasr.models.u2.family import (
    ATT_CACHE, CHUNK, CNN_CACHE, CTC, DECODER, ENCODER, ENCODER_OUT, HIDDEN, HYPS, HYPS_LENS, OFFSET, OUTPUT, PROBS,
    R_ATT_CACHE, R_CNN_CACHE, R_SCORE, SCORE,
)

EXAMPLE_CHUNK = 16


class EncoderChunk(nn.Module):
    """One stream's next chunk through the encoder with its caches (every key kept)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = model.encoder

    def forward(self, chunk: torch.Tensor, offset: torch.Tensor, att_cache: torch.Tensor,
                cnn_cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lens = torch.ones(1, dtype=torch.long, device=chunk.device) * chunk.size(1)
        cache_lens = torch.ones(1, dtype=torch.long, device=chunk.device) * att_cache.size(2)
        out, _, att, cnn = self.encoder.forward_chunks(chunk, lens, offset.reshape(1), att_cache.unsqueeze(1), cache_lens, cnn_cache)
        return out, att[:, 0], cnn


class CTCHead(nn.Module):
    """Encoder output -> CTC log-probabilities."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.ctc = model.ctc

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.ctc.log_softmax(hidden)


class AttentionDecoder(nn.Module):
    """Both decoders' log-probabilities of the hypotheses over one utterance's encoder output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, hyps: torch.Tensor, hyps_lens: torch.Tensor, encoder_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        l2r, r2l = self.model.decoder_log_probs(encoder_out, hyps, hyps_lens, reverse=True)
        return l2r, r2l if r2l is not None else torch.zeros_like(l2r[0, 0, 0])


def graphs(model: nn.Module, frontend: Any) -> list[ExportGraph]:
    """The encoder chunk, CTC and decoder graphs of ``model`` (a U2Model)."""
    enc = model.encoder
    layers, heads, d = len(enc.encoders), enc.heads, enc.output_size()
    window = (EXAMPLE_CHUNK - 1) * enc.embed.rate + enc.embed.right_context + 1
    chunk = torch.randn(1, window, frontend.output_size())
    offset = torch.tensor(EXAMPLE_CHUNK, dtype=torch.long)
    att_cache = torch.randn(layers, heads, EXAMPLE_CHUNK, 2 * (d // heads))
    cnn_cache = torch.randn(layers, 1, d, max(enc.cnn_kernel - 1, 0)) if enc.cnn_kernel else torch.zeros(0, 0, 0, 0)
    hidden = torch.randn(1, EXAMPLE_CHUNK, d)
    hyps = torch.tensor([[model.sos, 3, 4, 5], [model.sos, 6, model.eos, model.eos]], dtype=torch.long)
    hyps_lens = torch.tensor([4, 2], dtype=torch.long)
    return [
        ExportGraph(ENCODER, EncoderChunk(model), (chunk, offset, att_cache, cnn_cache), [CHUNK, OFFSET, ATT_CACHE, CNN_CACHE],
                    [OUTPUT, R_ATT_CACHE, R_CNN_CACHE],
                    {CHUNK: {1: "T"}, ATT_CACHE: {2: "T_CACHE"}, OUTPUT: {1: "T"}, R_ATT_CACHE: {2: "T_CACHE"}}),
        ExportGraph(CTC, CTCHead(model), (hidden,), [HIDDEN], [PROBS], {HIDDEN: {1: "T"}, PROBS: {1: "T"}}),
        ExportGraph(DECODER, AttentionDecoder(model), (hyps, hyps_lens, hidden), [HYPS, HYPS_LENS, ENCODER_OUT], [SCORE, R_SCORE],
                    {HYPS: {0: "NBEST", 1: "L"}, HYPS_LENS: {0: "NBEST"}, ENCODER_OUT: {1: "T"},
                     SCORE: {0: "NBEST", 1: "L"}, R_SCORE: {0: "NBEST", 1: "L"}}),
    ]
