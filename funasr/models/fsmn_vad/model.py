"""FSMN-VAD network: LFR features -> per-frame posteriors of 248 classes (class 0 = silence).

Deep-FSMN (https://arxiv.org/abs/1803.05030) with causal memory blocks, so a stream cut into
chunks gives the same scores as the whole sequence when each layer carries its last
``(lorder - 1) * lstride`` frames (19 for the released model) to the next chunk.
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional

import torch
from torch import nn

from funasr import registry
from funasr.errors import ConfigError


class LinearTransform(nn.Module):
    """A bias-free projection (checkpoint key ``<name>.linear.weight``)."""

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class AffineTransform(nn.Module):
    """A projection with bias (checkpoint keys ``<name>.linear.weight`` / ``.bias``)."""

    def __init__(self, input_dim: int, output_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(input_dim, output_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x)


class FSMNBlock(nn.Module):
    """Memory block ``x + causal_depthwise_conv(x)`` over time (left context only)."""

    def __init__(self, dim: int, lorder: int, lstride: int) -> None:
        super().__init__()
        self.lorder, self.lstride = lorder, lstride
        self.context = (lorder - 1) * lstride  # frames of history each output frame sees
        self.conv_left = nn.Conv2d(dim, dim, [lorder, 1], dilation=[lstride, 1], groups=dim, bias=False)

    def forward(self, x: torch.Tensor, cache: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, D) and the previous ``context`` frames (B, context, D) or None -> output, new cache."""
        if cache is None:
            cache = x.new_zeros(x.shape[0], self.context, x.shape[2])
        history = torch.cat([cache, x], dim=1)  # (B, context + T, D)
        if torch.onnx.is_in_onnx_export():  # one depthwise convolution: onnxruntime's kernel, not 2 x lorder ops
            conv = self.conv_left(history.transpose(1, 2).unsqueeze(-1)).squeeze(-1).transpose(1, 2)  # (B, T, D)
            return x + conv, history[:, history.shape[1] - self.context :]
        taps = self.conv_left.weight[:, 0, :, 0].t().contiguous()  # (lorder, D); tap k looks back context - k*lstride
        t = x.shape[1]
        out = torch.addcmul(x, history[:, :t], taps[0])
        for k in range(1, self.lorder):  # a depthwise conv as shifted multiply-adds, time-major (no transposes)
            out.addcmul_(history[:, k * self.lstride : k * self.lstride + t], taps[k])
        return out, history[:, history.shape[1] - self.context :].clone()


class BasicBlock(nn.Module):
    """One FSMN layer: project down, memory block, project up, ReLU."""

    def __init__(self, linear_dim: int, proj_dim: int, lorder: int, lstride: int) -> None:
        super().__init__()
        self.linear = LinearTransform(linear_dim, proj_dim)
        self.fsmn_block = FSMNBlock(proj_dim, lorder, lstride)
        self.affine = AffineTransform(proj_dim, linear_dim)

    def forward(self, x: torch.Tensor, cache: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        h, cache = self.fsmn_block(self.linear(x), cache)
        return self.affine(h).relu_(), cache


@registry.register()
class FSMN(nn.Module):
    """The FSMN stack of the VAD: (B, T, input_dim) -> softmax posteriors (B, T, output_dim)."""

    def __init__(
        self,
        input_dim: int,
        input_affine_dim: int,
        fsmn_layers: int,
        linear_dim: int,
        proj_dim: int,
        lorder: int,
        rorder: int = 0,
        lstride: int = 1,
        rstride: int = 0,
        output_affine_dim: int = 140,
        output_dim: int = 248,
    ) -> None:
        super().__init__()
        # rorder/rstride describe right context, which a streaming VAD cannot have (config.yaml sets 0).
        if rorder:
            raise ConfigError(f"FSMN with rorder={rorder} (right context) cannot stream; the VAD needs rorder: 0")
        self.in_linear1 = AffineTransform(input_dim, input_affine_dim)
        self.in_linear2 = AffineTransform(input_affine_dim, linear_dim)
        self.fsmn = nn.ModuleList(BasicBlock(linear_dim, proj_dim, lorder, lstride) for _ in range(fsmn_layers))
        self.out_linear1 = AffineTransform(linear_dim, output_affine_dim)
        self.out_linear2 = AffineTransform(output_affine_dim, output_dim)

    def forward(
        self, feats: torch.Tensor, cache: Optional[list[torch.Tensor]] = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features (B, T, input_dim) and per-layer caches (or None: zero history) -> scores, new caches."""
        x = self.in_linear2(self.in_linear1(feats)).relu_()  # (B, T, linear_dim)
        new_cache = []
        for i, layer in enumerate(self.fsmn):
            x, c = layer(x, None if cache is None else cache[i])
            new_cache.append(c)
        x = self.out_linear2(self.out_linear1(x))
        return torch.softmax(x, dim=-1), new_cache


@registry.register()
class FsmnVADStreaming(nn.Module):
    """FSMN-VAD: the FSMN encoder; the segmenter (segmenter.py) turns its scores into speech segments."""

    def __init__(self, encoder: FSMN) -> None:
        super().__init__()
        self.encoder = encoder

    @classmethod
    def from_config(
        cls, cfg: dict[str, Any], input_size: Optional[int] = None, vocab_size: Optional[int] = None
    ) -> "FsmnVADStreaming":
        """Build from a resolved config (``encoder``, ``encoder_conf``); ``input_size`` checks the feature width."""
        if not cfg.get("encoder"):
            raise ConfigError("FsmnVADStreaming config lacks 'encoder' (FSMN) and its encoder_conf")
        encoder = registry.build(cfg["encoder"], **(cfg.get("encoder_conf") or {}))
        in_dim = encoder.in_linear1.linear.in_features
        if input_size is not None and input_size != in_dim:
            raise ConfigError(
                f"the frontend gives {input_size}-dim features but encoder_conf.input_dim is {in_dim}; "
                "fix frontend_conf (n_mels * lfr_m) or encoder_conf"
            )
        return cls(encoder)

    def forward(
        self, feats: torch.Tensor, cache: Optional[list[torch.Tensor]] = None
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Features (B, T, 400) and FSMN caches -> per-frame scores (B, T, 248) and the caches for the next chunk."""
        return self.encoder(feats, cache)
