"""Export graphs of the Paraformer family, with the reference runtimes' names.

``model``: inputs ``speech`` f32 (B, T, 560), ``speech_lengths`` i32 (B,) (and for the
hotword models ``bias_embed`` f32 (B, H, D)); outputs ``logits`` f32 (B, N, vocab)
log-probabilities, ``token_num`` i32 (B,), and for the timestamp models (BiCif, SeACo)
``us_alphas`` / ``us_cif_peak`` f32 (B, 3T).

``model_eb`` (SeACo, Contextual): ``hotword`` i32 (H, L) token ids padded with 0 ->
``hw_embed`` f32 (L, H, D), the bias LSTM's output at every step; a hotword's embedding is
the step of its last token.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from funasr.errors import ExportError
from funasr.export.graph import ExportGraph
from funasr.export.layers import (
    CifExport,
    CrossAttentionExport,
    DecoderExport,
    DecoderLayerExport,
    EncoderExport,
    TimestampHead,
    decoder_layers,
    key_bias,
    token_mask,
    zero_state,
)
from funasr.models.paraformer import CifPredictorV3
from funasr.models.sanm import length_mask

AXES = {
    "speech": {0: "batch_size", 1: "feats_length"},
    "speech_lengths": {0: "batch_size"},
    "bias_embed": {0: "batch_size", 1: "num_hotwords"},
    "logits": {0: "batch_size", 1: "logits_length"},
    "token_num": {0: "batch_size"},
    "us_alphas": {0: "batch_size", 1: "alphas_length"},
    "us_cif_peak": {0: "batch_size", 1: "alphas_length"},
    "hotword": {0: "num_hotwords", 1: "hotword_length"},
    "hw_embed": {0: "hotword_length", 1: "num_hotwords"},
}


class ParaformerExport(nn.Module):
    """Encoder -> CIF -> decoder -> log-softmax, plus the timestamp head for CifPredictorV3 models."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.encoder = EncoderExport(model.encoder)
        self.predictor = CifExport(model.predictor)
        self.decoder = DecoderExport(model.decoder)
        self.timestamps = TimestampHead(model.predictor) if isinstance(model.predictor, CifPredictorV3) else None

    def forward(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        lens = speech_lengths.long()
        enc = self.encoder(speech, lens)
        embeds, token_num = self.predictor(enc, lens)
        _, log_probs = self.decoder(enc, key_bias(length_mask(lens, enc.shape[1]), enc.dtype), embeds, token_num)
        return self.outputs(log_probs, enc, lens, token_num)

    def outputs(self, logits: torch.Tensor, enc: torch.Tensor, lens: torch.Tensor, token_num: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``logits, token_num`` and, with the timestamp head, ``us_alphas, us_cif_peak``."""
        if self.timestamps is None:
            return logits, token_num.int()
        us_alphas, us_peaks = self.timestamps(enc, lens, token_num)
        return logits, token_num.int(), us_alphas, us_peaks


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
        lens = speech_lengths.long()
        enc = self.encoder(speech, lens)
        embeds, token_num = self.predictor(enc, lens)
        hidden, dec_logp = self.decoder(enc, key_bias(length_mask(lens, enc.shape[1]), enc.dtype), embeds, token_num)
        hotwords = bias_embed.to(hidden.dtype)
        count = torch.ones_like(hotwords[0, :, 0]).sum()  # H as a tensor, so the graph follows it
        keep_bias = self.hotword_filter(hotwords, hidden, token_num, count)[:, None, None, :]
        cif_att, _ = self.seaco_decoder(hotwords, keep_bias, embeds, token_num)
        dec_att, _ = self.seaco_decoder(hotwords, keep_bias, hidden, token_num)
        dha_logp = torch.log_softmax(self.hotword_output_layer(cif_att + dec_att).float(), dim=-1)
        use_decoder = (dha_logp.argmax(-1) == self.no_bias)[..., None] | ~(hotwords != 0).any()
        return self.outputs(torch.where(use_decoder, dec_logp, dha_logp), enc, lens, token_num)


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
        lens = speech_lengths.long()
        enc = self.encoder(speech, lens)
        embeds, token_num = self.predictor(enc, lens)
        log_probs = self.decoder(enc, key_bias(length_mask(lens, enc.shape[1]), enc.dtype), embeds, token_num, bias_embed.to(enc.dtype))
        return self.outputs(log_probs, enc, lens, token_num)


class HotwordEmbedExport(nn.Module):
    """Hotword token ids (H, L) -> the bias LSTM's outputs (L, H, D), batch second as the reference runtimes read them."""

    def __init__(self, embed: nn.Module, bias_encoder: nn.LSTM) -> None:
        super().__init__()
        self.embed = embed
        self.bias_encoder = bias_encoder

    def forward(self, hotword: torch.Tensor) -> torch.Tensor:
        x = self.embed(hotword.long()).to(self.bias_encoder.weight_ih_l0.dtype)  # the LSTM runs in float32
        out, _ = self.bias_encoder(x, zero_state(self.bias_encoder, x))
        return out.transpose(0, 1)


def speech_example(feat_dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Tracing inputs: two padded items of 6 and 30 frames."""
    return torch.randn(2, 30, feat_dim), torch.tensor([6, 30], dtype=torch.int32)


def _graph(name: str, module: nn.Module, inputs: tuple, in_names: list[str], out_names: list[str]) -> ExportGraph:
    return ExportGraph(name, module, inputs, in_names, out_names, {k: AXES[k] for k in in_names + out_names})


def _main_graph(module: ParaformerExport, inputs: tuple, in_names: list[str]) -> ExportGraph:
    outputs = ["logits", "token_num"] + ([] if module.timestamps is None else ["us_alphas", "us_cif_peak"])
    return _graph("model", module, inputs, in_names, outputs)


def graphs(task: Any) -> list[ExportGraph]:
    """``model`` of Paraformer / BiCifParaformer."""
    return [_main_graph(ParaformerExport(task.model), speech_example(task.frontend.output_size()), ["speech", "speech_lengths"])]


def hotword_graphs(task: Any) -> list[ExportGraph]:
    """``model`` (with ``bias_embed``) and ``model_eb`` of SeacoParaformer / ContextualParaformer."""
    from funasr.models.seaco_paraformer.model import ASF_NFILTER, SeacoParaformer

    model = task.model
    if isinstance(model, SeacoParaformer):
        module: ParaformerExport = SeacoParaformerExport(model, ASF_NFILTER)
        embed = HotwordEmbedExport(model.decoder.embed, model.bias_encoder)
    else:
        module = ContextualParaformerExport(model)
        embed_layer = model.decoder.embed if model.use_decoder_embedding else model.bias_embed
        embed = HotwordEmbedExport(embed_layer, model.bias_encoder)
    dim = model.bias_encoder.hidden_size
    speech = speech_example(task.frontend.output_size())
    main = _main_graph(module, (*speech, torch.randn(2, 4, dim)), ["speech", "speech_lengths", "bias_embed"])
    ids = torch.randint(3, model.vocab_size, (4, 6), dtype=torch.int32)
    return [main, _graph("model_eb", embed, (ids,), ["hotword"], ["hw_embed"])]
