"""Feature augmentation for training: SpecAugLFR (frequency and time masks on LFR-stacked features).

Random draws come from torch's generator on the features' device (``torch.manual_seed`` makes them
repeatable), in the reference's order: per mask kind, the widths (B, num_mask), then the positions.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import torch
from torch import nn

from funasr.errors import ConfigError
from funasr.registry import register


def mask_along(x: torch.Tensor, widths: Sequence[int], num_mask: int, dim: int, repeats: int = 1) -> torch.Tensor:
    """Zero ``num_mask`` random bands of width in ``[widths[0], widths[1])`` along ``dim`` (1: time, 2: feature) of x (B, T, D).

    With ``repeats`` > 1 the axis is ``repeats`` equal blocks (LFR-stacked frames): a band drawn in the
    first block is zeroed at the same offset in every block.
    """
    b, size = x.shape[0], x.shape[dim]
    block = size // repeats
    width = torch.randint(int(widths[0]), int(widths[1]), (b, num_mask), device=x.device)  # (B, M)
    pos = torch.randint(0, max(1, block - int(width.max())), (b, num_mask), device=x.device)  # (B, M)
    offsets = block * torch.arange(repeats, device=x.device)
    starts = (pos[:, None, :] + offsets[None, :, None]).reshape(b, -1, 1)  # (B, repeats·M, 1)
    ends = starts + width.repeat(1, repeats)[..., None]
    axis = torch.arange(size, device=x.device)[None, None, :]
    mask = ((starts <= axis) & (axis < ends)).any(dim=1)  # (B, size)
    return x.masked_fill(mask[:, :, None] if dim == 1 else mask[:, None, :], 0.0)


def width_pair(name: str, value: Any) -> tuple[int, int]:
    """A mask width range ``[low, high)`` from an int (``high``) or a pair, checked."""
    pair = (0, value) if isinstance(value, int) else tuple(value) if isinstance(value, (list, tuple)) else None
    if pair is None or len(pair) != 2 or not pair[1] > pair[0] >= 0:
        raise ConfigError(f"specaug_conf.{name} must be [low, high) with 0 <= low < high, got {value!r}")
    return int(pair[0]), int(pair[1])


@register()
class SpecAugLFR(nn.Module):
    """Frequency masks replicated in each of the ``lfr_rate + 1`` stacked frames, then time masks; masked values are 0.

    Takes ``specaug_conf`` as keyword arguments. Time warping is not implemented (the released
    Paraformer configs turn it off).
    """

    def __init__(
        self,
        apply_time_warp: bool = True,
        apply_freq_mask: bool = True,
        freq_mask_width_range: Any = (0, 20),
        num_freq_mask: int = 2,
        lfr_rate: int = 0,
        apply_time_mask: bool = True,
        time_mask_width_range: Optional[Any] = None,
        time_mask_width_ratio_range: Optional[Sequence[float]] = None,
        num_time_mask: int = 2,
        **_: Any,
    ) -> None:
        super().__init__()
        if apply_time_warp:
            raise ConfigError("SpecAugLFR: time warping is not supported; set specaug_conf.apply_time_warp: false")
        if not apply_freq_mask and not apply_time_mask:
            raise ConfigError("SpecAugLFR needs apply_freq_mask or apply_time_mask (specaug_conf)")
        if apply_time_mask and (time_mask_width_range is None) == (time_mask_width_ratio_range is None):
            raise ConfigError(
                "SpecAugLFR time masks need exactly one of specaug_conf.time_mask_width_range and time_mask_width_ratio_range"
            )
        self.freq = width_pair("freq_mask_width_range", freq_mask_width_range) if apply_freq_mask else None
        self.num_freq_mask, self.repeats = int(num_freq_mask), int(lfr_rate) + 1
        self.time = width_pair("time_mask_width_range", time_mask_width_range) if apply_time_mask and time_mask_width_range is not None else None
        self.time_ratio = tuple(time_mask_width_ratio_range) if apply_time_mask and time_mask_width_ratio_range is not None else None
        self.num_time_mask = int(num_time_mask)

    def time_widths(self, frames: int) -> Optional[tuple[int, int]]:
        """The time mask width range for ``frames`` frames (None: no time mask)."""
        if self.time is not None or self.time_ratio is None:
            return self.time
        low = max(0, math.floor(frames * self.time_ratio[0]))
        high = min(frames, math.floor(frames * self.time_ratio[1]))
        return (low, high) if high > low else None

    def forward(self, x: torch.Tensor, lens: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Features (B, T, D) -> masked copy (lengths unchanged; masks may fall on padding, as in the reference)."""
        if self.freq is not None:
            x = mask_along(x, self.freq, self.num_freq_mask, 2, self.repeats)
        widths = self.time_widths(x.shape[1])
        if widths is not None:
            x = mask_along(x, widths, self.num_time_mask, 1)
        return x
