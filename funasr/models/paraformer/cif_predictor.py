"""CIF predictors: per-frame weights (alphas) and integrate-and-fire into token embeddings.

``CifPredictorV2`` (Paraformer, Contextual) fires on a float64 prefix sum, as the
reference's vectorised ``cif_v1``; ``CifPredictorV3`` (BiCif, SeACo) fires with the
reference's sequential float32 loop and adds the 3x upsampled timestamp head. Both gather
the embeddings the same way: each frame adds ``alpha·h`` to its token, split at a fire.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from funasr.errors import ConfigError
from funasr.models.sanm import length_mask
from funasr.models.paraformer.cif import integrate_and_fire
from funasr.registry import register


@dataclass
class CifOutput:
    """What a CIF predictor gives the decoder (B items, N = max token count)."""

    embeds: torch.Tensor  # (B, N, D) acoustic embeddings, zero past each item's token_num
    token_num: torch.Tensor  # (B,) long, floor(sum(alphas) + tail)
    alphas: torch.Tensor  # (B, T+1) float32, with the tail weight after each item's last frame
    peaks: torch.Tensor  # (B, T+1) float32, the integrate value at every step (>= 1 on fires)


def gather_tokens(
    hidden: torch.Tensor, alphas: torch.Tensor, fire: torch.Tensor, remain: torch.Tensor, max_tokens: int
) -> torch.Tensor:
    """Sum ``alpha·h`` per token: a firing frame gives ``alpha - remain`` to its token and ``remain`` to the next.

    hidden (B, T, D), alphas/remain (B, T) float32, fire (B, T) bool -> (B, max_tokens, D).
    """
    b, t, d = hidden.shape
    slots = max_tokens + 1  # the last slot collects weight past the final token and is dropped
    fire_i = fire.long()
    token = torch.cumsum(fire_i, dim=1) - fire_i  # fires strictly before each frame
    base = torch.arange(b, device=hidden.device)[:, None] * slots
    cur = torch.where(fire, alphas - remain, alphas)
    h = hidden.float()
    out = torch.zeros(b * slots, d, device=hidden.device, dtype=torch.float32)
    out.index_add_(0, (base + token.clamp(max=max_tokens)).reshape(-1), (cur[..., None] * h).reshape(-1, d))
    nxt = fire & (token + 1 < max_tokens)
    if bool(nxt.any()):
        out.index_add_(0, (base + token + 1)[nxt], remain[nxt][:, None] * h[nxt])
    return out.view(b, slots, d)[:, :max_tokens]


def prefix_fire(alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """alphas (B, T) -> (peaks, fire mask, remainder after each fire) from a float64 prefix sum.

    Differentiable in ``alphas``: the remainder is the fractional part of the prefix sum.
    """
    prefix = torch.cumsum(alphas, dim=1, dtype=torch.float64).float()
    floor = torch.floor(prefix)
    prev = torch.cat([floor.new_zeros(floor.shape[0], 1), floor[:, :-1]], dim=1)
    fire = floor > prev
    peaks = fire.float() + prefix - floor
    remain = peaks - torch.floor(peaks)
    return peaks, fire, remain


@register()
class CifPredictorV2(nn.Module):
    """Conv1d + ReLU + Linear + sigmoid weights, a tail weight, then integrate-and-fire (threshold 1)."""

    def __init__(
        self,
        idim: int,
        l_order: int,
        r_order: int,
        threshold: float = 1.0,
        smooth_factor: float = 1.0,
        noise_threshold: float = 0.0,
        tail_threshold: float = 0.0,
        tail_mask: bool = True,
        **_: Any,
    ) -> None:
        super().__init__()
        if not tail_mask:
            raise ConfigError("CIF predictors support tail_mask=true only")
        self.l_order, self.r_order = l_order, r_order
        self.cif_conv1d = nn.Conv1d(idim, idim, l_order + r_order + 1)
        self.cif_output = nn.Linear(idim, 1)
        self.threshold = threshold
        self.smooth_factor = smooth_factor
        self.noise_threshold = noise_threshold
        self.tail_threshold = tail_threshold

    def frame_alphas(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """hidden (B, T, D) zero past each length, mask (B, T) -> alphas (B, T) float32."""
        x = nn.functional.pad(hidden.transpose(1, 2), (self.l_order, self.r_order))
        x = torch.relu(self.cif_conv1d(x)).transpose(1, 2)
        alphas = torch.sigmoid(self.cif_output(x).squeeze(-1).float())
        alphas = torch.relu(alphas * self.smooth_factor - self.noise_threshold)
        return alphas * mask

    def with_tail(self, hidden: torch.Tensor, alphas: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Append one step: a zero frame, and ``tail_threshold`` right after each item's last frame."""
        b, t, d = hidden.shape
        hidden = torch.cat([hidden, hidden.new_zeros(b, 1, d)], dim=1)
        tail = (torch.arange(t + 1, device=lens.device)[None, :] == lens[:, None]).float() * self.tail_threshold
        alphas = torch.cat([alphas, alphas.new_zeros(b, 1)], dim=1) + tail
        return hidden, alphas

    def fire(self, alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """alphas (B, T) -> (peaks, fire mask, remainder after each fire), as ``cif_v1``."""
        return prefix_fire(alphas)

    def masked_alphas(self, hidden: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder output (B, T, D) zeroed past each length (in the predictor's dtype), and its alphas (B, T) float32."""
        mask = length_mask(lens, hidden.shape[1])
        hidden = hidden.to(self.cif_output.weight.dtype) * mask[..., None].to(self.cif_output.weight.dtype)
        return hidden, self.frame_alphas(hidden, mask.float())

    def forward(self, hidden: torch.Tensor, lens: torch.Tensor) -> CifOutput:
        """Encoder output (B, T, D) and lengths (B,) -> token embeddings and CIF weights."""
        hidden, alphas = self.masked_alphas(hidden, lens)
        if self.tail_threshold > 0.0:
            hidden, alphas = self.with_tail(hidden, alphas, lens)
        token_num = torch.floor(alphas.sum(-1)).long()
        peaks, fire, remain = self.fire(alphas)
        max_tokens = int(token_num.max()) if token_num.numel() else 0
        embeds = gather_tokens(hidden, alphas, fire, remain, max_tokens)
        embeds = embeds * length_mask(token_num, max_tokens)[..., None]  # an item's weight after its last token is dropped
        return CifOutput(embeds.to(hidden.dtype), token_num, alphas, peaks)


@register()
class CifPredictorV3(CifPredictorV2):
    """CifPredictorV2 with the reference's sequential firing and a 3x upsampled timestamp head."""

    def __init__(
        self,
        idim: int,
        l_order: int,
        r_order: int,
        smooth_factor2: float = 1.0,
        noise_threshold2: float = 0.0,
        upsample_times: int = 5,
        upsample_type: str = "cnn",
        use_cif1_cnn: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(idim, l_order, r_order, **kwargs)
        if upsample_type != "cnn_blstm" or use_cif1_cnn:
            raise ConfigError(
                f"CifPredictorV3 supports upsample_type 'cnn_blstm' with use_cif1_cnn=false "
                f"(got {upsample_type!r}, use_cif1_cnn={use_cif1_cnn})"
            )
        self.upsample_times = upsample_times
        self.upsample_cnn = nn.ConvTranspose1d(idim, idim, upsample_times, upsample_times)
        self.blstm = nn.LSTM(idim, idim, 1, bias=True, batch_first=True, bidirectional=True)
        self.cif_output2 = nn.Linear(idim * 2, 1)
        self.smooth_factor2 = smooth_factor2
        self.noise_threshold2 = noise_threshold2

    def fire(self, alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """alphas (B, T) -> (peaks, fire mask, remainder after each fire), as the sequential ``cif``."""
        a = alphas.detach().cpu().numpy()
        peaks_np = integrate_and_fire(a, self.threshold, 1.0)
        fire_np = peaks_np >= np.float32(self.threshold)
        after = np.where(fire_np, peaks_np - np.float32(1.0), peaks_np)  # integrate carried to the next step
        before = np.concatenate([np.zeros_like(after[:, :1]), after[:, :-1]], axis=1)
        remain_np = np.where(fire_np, a - (np.float32(1.0) - before), np.float32(0.0)).astype(np.float32)
        return tuple(torch.from_numpy(x).to(alphas.device) for x in (peaks_np, fire_np, remain_np))

    def upsampled_alphas(self, hidden: torch.Tensor, lens: torch.Tensor, token_num: torch.Tensor) -> torch.Tensor:
        """Timestamp weights (B, upsample_times·T) scaled so each item sums to its ``token_num``."""
        alphas2 = self.raw_upsampled_alphas(hidden, lens)
        return alphas2 * (token_num.float() / alphas2.sum(-1))[:, None]

    def raw_upsampled_alphas(self, hidden: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Timestamp weights (B, upsample_times·T) as the head gives them, zero past each length."""
        b, t, _ = hidden.shape
        mask = length_mask(lens, t)
        hidden = hidden.to(self.cif_output2.weight.dtype) * mask[..., None].to(self.cif_output2.weight.dtype)
        up = self.upsample_cnn(hidden.transpose(1, 2)).transpose(1, 2)  # (B, 3T, D)
        up_lens = lens * self.upsample_times
        if bool((lens == t).all()):
            out, _ = self.blstm(up)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(up, up_lens.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.blstm(packed)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=up.shape[1])
        alphas2 = torch.sigmoid(self.cif_output2(out).squeeze(-1).float())
        alphas2 = torch.relu(alphas2 * self.smooth_factor2 - self.noise_threshold2)
        return alphas2 * mask.repeat_interleave(self.upsample_times, dim=1).float()

