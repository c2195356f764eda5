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
from torch import nn

from funasr.export.graph import ExportGraph
from funasr.export.layers import CifExport, DecoderExport, EncoderExport, TimestampHead, key_bias, zero_state
from funasr.models.paraformer.cif_predictor import CifPredictorV3
from funasr.models.paraformer.family import (
    BIAS_EMBED, EMBED_GRAPH, HOTWORD, HW_EMBED, LOGITS, SPEECH, SPEECH_LENGTHS, TOKEN_NUM, US_ALPHAS, US_CIF_PEAK,
)
from funasr.models.sanm import length_mask

AXES = {
    SPEECH: {0: "batch_size", 1: "feats_length"},
    SPEECH_LENGTHS: {0: "batch_size"},
    BIAS_EMBED: {0: "batch_size", 1: "num_hotwords"},
    LOGITS: {0: "batch_size", 1: "logits_length"},
    TOKEN_NUM: {0: "batch_size"},
    US_ALPHAS: {0: "batch_size", 1: "alphas_length"},
    US_CIF_PEAK: {0: "batch_size", 1: "alphas_length"},
    HOTWORD: {0: "num_hotwords", 1: "hotword_length"},
    HW_EMBED: {0: "hotword_length", 1: "num_hotwords"},
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
        enc, lens, memory_bias, embeds, token_num = self.encode_and_fire(speech, speech_lengths)
        _, log_probs = self.decoder(enc, memory_bias, embeds, token_num)
        return self.outputs(log_probs, enc, lens, token_num)

    def encode_and_fire(self, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Encoder output (B, T, D), lengths (B,) long, its attention bias (B, 1, 1, T), CIF embeddings and counts."""
        lens = speech_lengths.long()
        enc = self.encoder(speech, lens)
        embeds, token_num = self.predictor(enc, lens)
        return enc, lens, key_bias(length_mask(lens, enc.shape[1]), enc.dtype), embeds, token_num

    def outputs(self, logits: torch.Tensor, enc: torch.Tensor, lens: torch.Tensor, token_num: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``logits, token_num`` and, with the timestamp head, ``us_alphas, us_cif_peak``."""
        if self.timestamps is None:
            return logits, token_num.int()
        us_alphas, us_peaks = self.timestamps(enc, lens, token_num)
        return logits, token_num.int(), us_alphas, us_peaks


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


def graph(name: str, module: nn.Module, inputs: tuple, in_names: list[str], out_names: list[str]) -> ExportGraph:
    """An ExportGraph whose tensors take their dynamic axes from AXES."""
    return ExportGraph(name, module, inputs, in_names, out_names, {k: AXES[k] for k in in_names + out_names})


def main_graph(module: ParaformerExport, inputs: tuple, in_names: list[str]) -> ExportGraph:
    """``model``: the outputs of ``module`` (with ``us_alphas``/``us_cif_peak`` when it has the timestamp head)."""
    outputs = [LOGITS, TOKEN_NUM] + ([] if module.timestamps is None else [US_ALPHAS, US_CIF_PEAK])
    return graph("model", module, inputs, in_names, outputs)


def graphs(model: nn.Module, frontend: Any) -> list[ExportGraph]:
    """``model`` of Paraformer / BiCifParaformer."""
    return [main_graph(ParaformerExport(model), speech_example(frontend.output_size()), [SPEECH, SPEECH_LENGTHS])]


def hotword_graphs(model: nn.Module, frontend: Any, module: ParaformerExport, embed_layer: nn.Module) -> list[ExportGraph]:
    """``model`` (``module``, with ``bias_embed``) and ``model_eb`` (``embed_layer`` + the bias LSTM) of a hotword model."""
    embed = HotwordEmbedExport(embed_layer, model.bias_encoder)
    speech = speech_example(frontend.output_size())
    main = main_graph(module, (*speech, torch.randn(2, 4, model.bias_encoder.hidden_size)), [SPEECH, SPEECH_LENGTHS, BIAS_EMBED])
    ids = torch.randint(3, model.vocab_size, (4, 6), dtype=torch.int32)
    return [main, graph(EMBED_GRAPH, embed, (ids,), [HOTWORD], [HW_EMBED])]
