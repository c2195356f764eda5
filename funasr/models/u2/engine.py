"""The U2 family on PyTorch: an ``ASRNet`` (funasr.engines) around U2Model, searches from funasr.search."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from funasr import search
from funasr.engines.torch import TorchEngine
from funasr.models.u2.decoding import ChunkCache, U2Net
from funasr.options import SearchOptions


class U2Engine(TorchEngine, U2Net):
    """Encoder (full or chunked), CTC, decoder of the module; the search named by the options; numpy in and out."""

    def __init__(self, module: nn.Module, cfg: dict[str, Any], device: Optional[str] = None, dtype: Optional[str] = None) -> None:
        TorchEngine.__init__(self, module, cfg, device, dtype)
        U2Net.__init__(self, cfg)

    @torch.inference_mode()
    def search(self, feats: np.ndarray, lens: np.ndarray, opts: SearchOptions) -> list[search.Hypothesis]:
        """One hypothesis per item (an item shorter than the subsampling's receptive field gives none)."""
        out = [search.Hypothesis([], None, []) for _ in lens]
        live = np.flatnonzero(lens > self.right_context)
        if not len(live):
            return out
        model = self.module
        x = self.tensor(feats[live, : int(lens[live].max())])
        enc, enc_lens = model.encode(x, self.tensor(lens[live]), opts.decoding_chunk_size, opts.num_decoding_left_chunks)
        ctc = self.numpy(model.ctc_log_probs(enc))
        for j, i in enumerate(live):
            n = int(enc_lens[j])
            out[i] = self.search_one(enc[j : j + 1, :n], ctc[j, :n], opts)
        return out

    @torch.inference_mode()
    def search_one(self, enc: torch.Tensor, ctc: np.ndarray, opts: SearchOptions) -> search.Hypothesis:
        """The search of ``opts`` over one utterance's encoder output (1, T', d) and CTC log-probs (T', V)."""
        model = self.module

        def decoder(hyps: np.ndarray, lens: np.ndarray, reverse: bool) -> tuple[np.ndarray, Optional[np.ndarray]]:
            l2r, r2l = model.decoder_log_probs(enc, self.tensor(hyps), self.tensor(lens), reverse)
            return self.numpy(l2r), None if r2l is None else self.numpy(r2l)

        return search.run_search(opts.decoding_method, ctc, decoder, model.sos, model.eos, model.blank_id, opts.beam(),
                                 opts.ctc_weight, opts.reverse_weight)

    @torch.inference_mode()
    def stream_chunks(self, windows: list[np.ndarray], caches: list[Optional[ChunkCache]], keep: list[int]) -> list[ChunkCache]:
        """The next fbank window (T_i, 80) of several streams through the encoder in one batch; the caches after it.

        ``keep``: keys each stream keeps for its next chunk (< 0: all). The new frames' CTC
        log-probabilities are the last rows of the returned ``ctc``.
        """
        model, device = self.module, self.device
        lens = torch.tensor([len(w) for w in windows], device=device)
        xs = torch.zeros(len(windows), int(lens.max()), windows[0].shape[1], device=device, dtype=model.dtype)
        for i, w in enumerate(windows):
            xs[i, : len(w)] = self.tensor(w)
        cache_lens = torch.tensor([c.att.size(2) if c else 0 for c in caches], device=device)
        tc = int(cache_lens.max())
        layers = len(model.encoder.encoders)
        att: Optional[torch.Tensor] = None
        cnn: Optional[torch.Tensor] = None
        first = next((c for c in caches if c), None)
        if first is not None and tc > 0:
            att = xs.new_zeros(layers, len(windows), *first.att.shape[1:2], tc, first.att.size(3))
        if first is not None and first.cnn.numel():
            cnn = xs.new_zeros(layers, len(windows), *first.cnn.shape[1:])
        for i, c in enumerate(caches):
            if c and c.att.size(2) and att is not None:
                att[:, i, :, tc - c.att.size(2) :] = c.att
            if c and c.cnn.numel() and cnn is not None:
                cnn[:, i] = c.cnn
        offsets = torch.tensor([c.offset if c else 0 for c in caches], device=device)
        out, out_lens, new_att, new_cnn = model.encoder.forward_chunks(xs, lens, offsets, att, cache_lens, cnn)
        ctc = self.numpy(model.ctc_log_probs(out))
        result = []
        for i, c in enumerate(caches):
            n, kept = int(out_lens[i]), int(cache_lens[i]) + int(out_lens[i])
            start = 0 if keep[i] < 0 else max(kept - keep[i], 0)
            enc = out[i, :n] if c is None else torch.cat([c.enc, out[i, :n]])
            result.append(ChunkCache(
                (c.offset if c else 0) + n, new_att[:, i, :, tc - int(cache_lens[i]) + start : tc + n].clone(),
                new_cnn[:, i].clone() if new_cnn.numel() else new_cnn, enc,
                ctc[i, :n] if c is None else np.concatenate([c.ctc, ctc[i, :n]]),
            ))
        return result
