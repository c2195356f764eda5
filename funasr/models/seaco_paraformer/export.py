"""Export graphs of SeacoParaformer: ``model`` takes ``bias_embed`` (B, H, D); ``model_eb`` encodes hotwords.

An all-zero ``bias_embed`` means "no hotwords" (see :class:`SeacoParaformerExport`).
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from funasr.errors import ExportError
from funasr.export.graph import ExportGraph
from funasr.export.layers import DecoderExport, decoder_layers, token_mask
from funasr.models.paraformer.export import ParaformerExport, hotword_graphs


class HotwordFilter(nn.Module):
    """SeACo's ASF filter as an attention bias: (B, H) log of how often each hotword is kept (-inf: dropped).

    With more than ``nfilter`` hotwords, each utterance keeps the ``nfilter`` its tokens
    attend to most in the last hotword-decoder layer, plus the sentinel (last); otherwise all.
    """

    def __init__(self, seaco_decoder: nn.Module, nfilter: int) -> None:
        super().__init__()
        self.decoders = decoder_layers(seaco_decoder, "decoders")
        self.nfilter = nfilter

    def forward(self, hotwords: torch.Tensor, hidden: torch.Tensor, token_num: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        mask = token_mask(token_num, hidden)
        x = hidden
        for layer in self.decoders[:-1]:
            x = layer(x, mask, hotwords, None)
        last = self.decoders[-1]
        probs = last.src_attn.weights(last.norm3(last.self_part(x, mask)), hotwords)  # (B, heads, N, H)
        scores = (probs * mask[:, None]).sum(dim=(1, 2))  # (B, H)
        # rank of each hotword: those attended more, then equal ones earlier in the list (exactly nfilter kept)
        before = torch.arange(hotwords.shape[1], device=hotwords.device)
        earlier = before[None, None, :] < before[None, :, None]
        rank = ((scores[:, None, :] > scores[:, :, None]) | ((scores[:, None, :] == scores[:, :, None]) & earlier)).sum(-1)
        sentinel = before[None, :] == count - 1
        kept = (rank < torch.clamp(count - 1, max=self.nfilter)).float() + sentinel.float()
        kept = torch.where(count > self.nfilter, kept, torch.ones_like(kept))
        return torch.log(kept).to(hidden.dtype)


class SeacoParaformerExport(ParaformerExport):
    """SeACo decoding: where the hotword branch does not predict ``NO_BIAS`` its scores replace the decoder's.

    An all-zero ``bias_embed`` (no LSTM output is ever all zero) means "no hotwords": the
    decoder's scores are returned unchanged, as the eager model does without hotwords.
    """

    def __init__(self, model: nn.Module, nfilter: int) -> None:
        super().__init__(model)
        if model.lstm_proj is not None:
            raise ExportError("exporting SeacoParaformer with a bidirectional bias encoder (bias_encoder_bid) is not supported")
        self.seaco_decoder = DecoderExport(model.seaco_decoder)
        self.hotword_filter = HotwordFilter(model.seaco_decoder, nfilter)
        self.hotword_output_layer = model.hotword_output_layer
        self.no_bias = model.no_bias

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor, bias_embed: torch.Tensor) -> tuple[torch.Tensor, ...]:
        enc, lens, memory_bias, embeds, token_num = self.encode_and_fire(speech, speech_lengths)
        hidden, dec_logp = self.decoder(enc, memory_bias, embeds, token_num)
        hotwords = bias_embed.to(hidden.dtype)
        count = torch.ones_like(hotwords[0, :, 0]).sum()  # H as a tensor, so the graph follows it
        keep_bias = self.hotword_filter(hotwords, hidden, token_num, count)[:, None, None, :]
        cif_att, _ = self.seaco_decoder(hotwords, keep_bias, embeds, token_num)
        dec_att, _ = self.seaco_decoder(hotwords, keep_bias, hidden, token_num)
        dha_logp = torch.log_softmax(self.hotword_output_layer(cif_att + dec_att).float(), dim=-1)
        use_decoder = (dha_logp.argmax(-1) == self.no_bias)[..., None] | ~(hotwords != 0).any()
        return self.outputs(torch.where(use_decoder, dec_logp, dha_logp), enc, lens, token_num)


def graphs(model: nn.Module, frontend: Any) -> list[ExportGraph]:
    """``model`` (with ``bias_embed``) and ``model_eb`` of SeacoParaformer."""
    from funasr.models.seaco_paraformer.model import ASF_NFILTER

    return hotword_graphs(model, frontend, SeacoParaformerExport(model, ASF_NFILTER), model.decoder.embed)
