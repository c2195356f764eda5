"""Export-friendly wrappers of shared parts: every shape follows the inputs, no Python branch on data.

The eager models skip masks when nothing is padded, cache position tables and gather CIF
tokens with index_add and ``int(...)`` sizes; a traced graph would freeze those choices.
These wrappers run the same modules (same parameters, same math) with masks always built
from the lengths, the position encoding computed in the graph, and CIF tokens gathered by
a one-hot matrix product whose size is the data's token count. Each wrapper is called as a
module, so graph node names keep the model's hierarchy (``/decoder/output_layer/MatMul``),
which the int8 quantisation's exclusions rely on.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from funasr.models.sanm import SANMEncoder, length_mask, sinusoidal_encoding


class EncoderExport(nn.Module):
    """SANMEncoder: (B, T, D_in) features and (B,) lengths -> (B, T, D), zero past each length."""

    def __init__(self, encoder: SANMEncoder) -> None:
        super().__init__()
        self.encoder = encoder

    def forward(self, xs: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        enc = self.encoder
        valid = length_mask(lens, xs.shape[1])  # (B, T)
        mask = valid[..., None].to(xs.dtype)
        xs = xs * enc.output_size() ** 0.5
        if enc.embed is not None:
            xs = xs + sinusoidal_encoding(xs.shape[1], xs.shape[2], xs.device).to(xs.dtype)
        for layer in (*enc.encoders0, *enc.encoders):
            xs = layer(xs, mask, valid)
        return enc.after_norm(xs) * mask


def token_mask(token_num: torch.Tensor, embeds: torch.Tensor) -> torch.Tensor:
    """(B, N, 1) float mask of the valid CIF tokens."""
    return length_mask(token_num, embeds.shape[1])[..., None].to(embeds.dtype)


def decoder_layers(
    layers: nn.ModuleList, x: torch.Tensor, mask: torch.Tensor, memory: torch.Tensor, memory_mask: Optional[torch.Tensor]
) -> torch.Tensor:
    """SAN-M decoder layers (FSMN + cross-attention) over ``x`` (B, N, D).

    ``mask`` (B, N, 1) marks valid tokens; ``memory_mask`` (B, T) is a bool mask of valid
    memory frames, a float bias added to the attention scores, or None (all valid).
    """
    for layer in layers:
        x = layer(x, mask, memory, memory_mask)
    return x


class DecoderExport(nn.Module):
    """ParaformerSANMDecoder: memory (B, T, D'), its mask, CIF embeddings and counts -> hidden (B, N, D), log-probs.

    The log-probabilities are None for a decoder without an output layer (SeACo's hotword decoder).
    """

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(
        self, memory: torch.Tensor, memory_mask: torch.Tensor, embeds: torch.Tensor, token_num: torch.Tensor
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        dec = self.decoder
        mask = token_mask(token_num, embeds)
        hidden = dec.after_norm(dec.tail(decoder_layers(dec.decoders, embeds, mask, memory, memory_mask), mask))
        if dec.output_layer is None:
            return hidden, None
        return hidden, torch.log_softmax(dec.output_layer(hidden), dim=-1)


def cumulative_fires(alphas: torch.Tensor, threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) weights -> (integrate value at each step before its fire, fire mask), on a float64 prefix sum.

    A step fires when the prefix sum passes a multiple of ``threshold``; the integrate value
    is the prefix sum minus what earlier fires used up (the sequential loop's running value).
    """
    prefix = torch.cumsum(alphas, dim=1, dtype=torch.float64).float()
    fired = torch.floor(prefix / threshold)  # fires up to and including each step
    before = torch.cat([fired.new_zeros(fired.shape[0], 1), fired[:, :-1]], dim=1)
    return prefix - before * threshold, fired > before


class CifExport(nn.Module):
    """CIF of a V2/V3 predictor: (B, T, D) encoder output -> (embeds (B, N, D), token_num (B,) float).

    N is the largest token count of the batch; embeddings past an item's count are zero.
    """

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        self.predictor = predictor

    def forward(self, hidden: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pred = self.predictor
        valid = length_mask(lens, hidden.shape[1])
        hidden = hidden * valid[..., None].to(hidden.dtype)
        alphas = pred.frame_alphas(hidden, valid.float())
        if pred.tail_threshold > 0.0:
            hidden, alphas = pred.with_tail(hidden, alphas, lens)
        token_num = torch.floor(alphas.sum(-1))
        peaks, fire = cumulative_fires(alphas, 1.0)
        remain = torch.where(fire, peaks - 1.0, torch.zeros_like(peaks))  # weight a fire passes to the next token
        firef = fire.float()
        token = torch.cumsum(firef, dim=1) - firef  # (B, T+1) index of the token each step feeds
        k = torch.arange(token_num.max().long(), device=hidden.device).float()[None, :, None]  # (1, N, 1)
        weights = (token[:, None, :] == k) * (alphas - remain)[:, None, :] + (token[:, None, :] + 1 == k) * remain[:, None, :]
        weights = weights * (k < token_num[:, None, None])  # (B, N, T+1)
        return torch.matmul(weights, hidden.float()), token_num


def zero_state(lstm: nn.LSTM, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero (h0, c0) sized from the batch-first input ``x``, so the graph's batch size stays dynamic."""
    h0 = torch.zeros_like(x[:, 0, :1]).expand(-1, lstm.hidden_size)[None].expand(lstm.num_layers, -1, -1).contiguous()
    return h0, h0


def reverse_valid(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Reverse each item's first ``lens`` steps of (B, T, D) in place of them; steps past the length become 0."""
    t = x.shape[1]
    pos = torch.arange(t, device=x.device)[None, :]
    src = (lens[:, None] - 1 - pos).clamp(min=0)  # (B, T)
    gathered = torch.gather(x, 1, src[..., None].expand(-1, -1, x.shape[2]))
    return gathered * (pos < lens[:, None])[..., None].to(x.dtype)


class TimestampHead(nn.Module):
    """CifPredictorV3's upsampled weights with the BiLSTM split into its two directions.

    The eager model packs padded items; here the backward direction runs forward over each
    item's frames reversed in place, which gives the same outputs without packing.
    """

    def __init__(self, predictor: nn.Module) -> None:
        super().__init__()
        blstm = predictor.blstm
        self.upsample_cnn = predictor.upsample_cnn
        self.cif_output2 = predictor.cif_output2
        self.times = predictor.upsample_times
        self.smooth_factor2 = predictor.smooth_factor2
        self.noise_threshold2 = predictor.noise_threshold2
        self.lstm_fw = nn.LSTM(blstm.input_size, blstm.hidden_size, batch_first=True)
        self.lstm_bw = nn.LSTM(blstm.input_size, blstm.hidden_size, batch_first=True)
        for direction, suffix in ((self.lstm_fw, ""), (self.lstm_bw, "_reverse")):
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                getattr(direction, name).data.copy_(getattr(blstm, name + suffix).data)

    def forward(self, hidden: torch.Tensor, lens: torch.Tensor, token_num: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D), lengths, token counts -> (alphas (B, 3T) summing to token_num, fire peaks at 0.9999)."""
        b, t, d = hidden.shape
        valid = length_mask(lens, t)
        up = self.upsample_cnn((hidden * valid[..., None].to(hidden.dtype)).transpose(1, 2)).transpose(1, 2)
        up_lens = lens * self.times
        forward, _ = self.lstm_fw(up, zero_state(self.lstm_fw, up))
        backward, _ = self.lstm_bw(reverse_valid(up, up_lens), zero_state(self.lstm_bw, up))
        out = torch.cat([forward, reverse_valid(backward, up_lens)], dim=-1)
        alphas = torch.sigmoid(self.cif_output2(out).squeeze(-1).float())
        alphas = torch.relu(alphas * self.smooth_factor2 - self.noise_threshold2)
        alphas = alphas * valid[:, :, None].expand(b, t, self.times).reshape(b, t * self.times).float()
        alphas = alphas * (token_num.float() / alphas.sum(-1))[:, None]
        peaks, _ = cumulative_fires(alphas, 1.0 - 1e-4)
        return alphas, peaks
