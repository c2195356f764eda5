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

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from funasr.export.graph import ExportGraph
from funasr.models.u2.model import reverse_hyps
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


class WeNetJit(nn.Module):
    """WeNet's ``final.zip``: scripted, it has the methods WeNet's LibTorch runtime calls. Its ``encoder``, ``decoder``
    and ``ctc`` are our modules traced (their state dict keeps WeNet's checkpoint keys)."""

    __constants__ = ["bidirectional"]  # the decoder call compiled for this model's decoder only

    def __init__(self, model: nn.Module, frontend: Any) -> None:
        super().__init__()
        enc = model.encoder
        chunk, offset, att_cache, cnn_cache = next(g for g in graphs(model, frontend) if g.name == ENCODER).inputs
        self.layers, self.heads, self.d = len(enc.encoders), enc.heads, enc.output_size()
        self.cnn_width = cnn_cache.size(-1)
        lens = torch.tensor([chunk.size(1)])
        self.encoder = torch.jit.trace_module(
            enc, {"forward_chunks": (chunk, lens, offset.reshape(1), att_cache.unsqueeze(1), torch.tensor([att_cache.size(2)]), cnn_cache)},
            check_trace=False)
        hidden = torch.randn(1, EXAMPLE_CHUNK, self.d)
        self.ctc = torch.jit.trace_module(model.ctc, {"log_softmax": hidden}, check_trace=False)
        hyps = torch.tensor([[model.sos, 3, 4, 5], [model.sos, 6, model.eos, model.eos]], dtype=torch.long)
        hyps_lens = torch.tensor([4, 2], dtype=torch.long)
        memory, memory_mask = hidden.expand(2, -1, -1), torch.ones(2, 1, EXAMPLE_CHUNK, dtype=torch.bool)
        self.bidirectional = bool(model.bidirectional)
        example = (memory, memory_mask, hyps, hyps_lens) + ((reverse_hyps(hyps, hyps_lens, model.eos),) if self.bidirectional else ())
        self.decoder = torch.jit.trace_module(model.decoder, {"forward": example}, check_trace=False)
        self.rate, self.context = enc.embed.rate, enc.embed.right_context
        self.sos, self.eos = model.sos, model.eos

    @torch.jit.export
    def subsampling_rate(self) -> int:
        return self.rate

    @torch.jit.export
    def right_context(self) -> int:
        return self.context

    @torch.jit.export
    def sos_symbol(self) -> int:
        return self.sos

    @torch.jit.export
    def eos_symbol(self) -> int:
        return self.eos

    @torch.jit.export
    def is_bidirectional_decoder(self) -> bool:
        return self.bidirectional

    @torch.jit.export
    def forward_encoder_chunk(self, xs: torch.Tensor, offset: int, required_cache_size: int,
                              att_cache: torch.Tensor = torch.zeros(0, 0, 0, 0),
                              cnn_cache: torch.Tensor = torch.zeros(0, 0, 0, 0)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Raw fbank (1, T, 80) -> (1, C, d), att_cache (L, H, Tc', 2 d_k), cnn_cache (L, 1, d, K-1), as WeNet's:
        ``required_cache_size`` < 0 keeps every key, 0 none, N > 0 the last N; empty caches at the start."""
        if att_cache.size(0) == 0:
            att_cache = xs.new_zeros(self.layers, self.heads, 0, 2 * (self.d // self.heads))
        if cnn_cache.size(0) == 0 and self.cnn_width > 0:
            cnn_cache = xs.new_zeros(self.layers, 1, self.d, self.cnn_width)
        out, _, att, cnn = self.encoder.forward_chunks(
            xs, torch.tensor([xs.size(1)]), torch.tensor([offset]), att_cache.unsqueeze(1), torch.tensor([att_cache.size(2)]), cnn_cache)
        keys = att.size(3)
        start = 0 if required_cache_size < 0 else max(keys - required_cache_size, 0)
        return out, att[:, 0, :, start:], cnn

    @torch.jit.export
    def ctc_activation(self, xs: torch.Tensor) -> torch.Tensor:
        """Encoder output (1, T, d) -> CTC log-probabilities (1, T, V)."""
        return self.ctc.log_softmax(xs)

    @torch.jit.export
    def forward_attention_decoder(self, hyps: torch.Tensor, hyps_lens: torch.Tensor, encoder_out: torch.Tensor,
                                  reverse_weight: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
        """``<sos> + hyp`` (N, L+1), lengths (N,), one utterance's encoder output (1, T, d) -> left-to-right log-probs
        (N, L+1, V) and right-to-left ones (0-dim 0.0 without a right-to-left decoder or with ``reverse_weight`` 0)."""
        n = hyps.size(0)
        memory = encoder_out.repeat(n, 1, 1)
        memory_mask = torch.ones(n, 1, encoder_out.size(1), dtype=torch.bool, device=encoder_out.device)
        r2l = torch.log_softmax(torch.zeros(1), dim=0)[0]
        if self.bidirectional:
            left, right = self.decoder(memory, memory_mask, hyps, hyps_lens, reverse_hyps(hyps, hyps_lens, self.eos))
            if reverse_weight > 0.0:
                r2l = torch.log_softmax(right.float(), -1)
        else:
            left = self.decoder(memory, memory_mask, hyps, hyps_lens)
        return torch.log_softmax(left.float(), -1), r2l


def export_wenet_jit(model: nn.Module, frontend: Any, out: Path) -> Path:
    """Write ``out/final.zip`` (WeNet's scripted model) for WeNet's LibTorch runtime; AutoModel loads such folders too."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # TorchScript is deprecated, yet LibTorch's format
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        scripted = torch.jit.script(WeNetJit(model.float().eval(), frontend))
    scripted.save(str(out / "final.zip"))
    return out / "final.zip"
