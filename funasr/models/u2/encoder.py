"""WeNet's Conformer and Transformer encoders (U2/U2++): subsampling, chunk attention, causal convolution.

Parameter names equal WeNet's checkpoint keys under ``encoder.``. ``forward`` runs whole
utterances under an optional chunk mask; ``forward_chunk`` runs one chunk of a stream with its
attention and convolution caches and gives the same output (batch of one).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from funasr.errors import ConfigError
from funasr.models.u2.decoding import SUBSAMPLING_RATES

ACTIVATIONS = {"swish": nn.SiLU, "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}


def activation(name: str) -> nn.Module:
    """The activation module WeNet names ``name``."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"activation_type {name!r} is not supported (choose from {', '.join(ACTIVATIONS)})")
    return ACTIVATIONS[name]()


def sinusoids(start: torch.Tensor, length: int, d: int) -> torch.Tensor:
    """WeNet's positional table rows ``start .. start+length-1`` per item: start (B,) int64 -> (B, length, d), sin/cos interleaved."""
    pos = (start.unsqueeze(1) + torch.arange(length, device=start.device)).to(torch.float32).unsqueeze(-1)  # (B, length, 1)
    div = torch.exp(torch.arange(0, d, 2, dtype=torch.float32, device=start.device) * -(math.log(10000.0) / d))
    return torch.stack([torch.sin(pos * div), torch.cos(pos * div)], dim=-1).reshape(start.size(0), length, d)


def chunk_mask(size: int, chunk: int, left_chunks: int, device: torch.device) -> torch.Tensor:
    """(size, size) bool: query ``i`` sees keys of its own chunk and ``left_chunks`` chunks before (< 0: all)."""
    idx = torch.arange(size, device=device)
    chunk_of = torch.div(idx, chunk, rounding_mode="floor")
    end = torch.clamp((chunk_of + 1) * chunk, max=size)
    start = torch.clamp((chunk_of - left_chunks) * chunk, min=0) if left_chunks >= 0 else torch.zeros_like(idx)
    return (idx.unsqueeze(0) >= start.unsqueeze(1)) & (idx.unsqueeze(0) < end.unsqueeze(1))


class GlobalCMVN(nn.Module):
    """``(x - mean) * istd`` per feature dimension (buffers from the checkpoint)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("istd", torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) * self.istd


# input_layer -> (conv (kernel, stride) list, mask slices (start, step), name of the linear)
SUBSAMPLING = {
    "conv2d": ([(3, 2), (3, 2)], [(2, 2), (2, 2)], "out"),
    "conv2d6": ([(3, 2), (5, 3)], [(2, 2), (4, 3)], "linear"),
    "conv2d8": ([(3, 2), (3, 2), (3, 2)], [(2, 2), (2, 2), (2, 2)], "linear"),
}


class Conv2dSubsampling(nn.Module):
    """Strided 2-D convolutions (ReLU after each, no padding) then a Linear: (B, T, D) -> (B, T', d)."""

    def __init__(self, input_layer: str, idim: int, odim: int) -> None:
        super().__init__()
        if input_layer not in SUBSAMPLING:
            raise ConfigError(f"encoder_conf.input_layer {input_layer!r} is not supported (choose from {', '.join(SUBSAMPLING)})")
        convs, self.slices, self.linear_name = SUBSAMPLING[input_layer]
        self.rate, self.right_context = SUBSAMPLING_RATES[input_layer]
        layers: list[nn.Module] = []
        freq, channels = idim, 1
        for kernel, stride in convs:
            layers += [nn.Conv2d(channels, odim, kernel, stride), nn.ReLU()]
            freq, channels = (freq - kernel) // stride + 1, odim
        self.conv = nn.Sequential(*layers)
        linear = nn.Linear(odim * freq, odim)
        if self.linear_name == "out":
            self.out = nn.Sequential(linear)
        else:
            self.linear = linear

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, D) and mask (B, 1, T) -> (B, T', d) and the mask (B, 1, T')."""
        x = self.conv(x.unsqueeze(1))  # (B, d, T', F')
        b, c, t, f = x.shape
        x = x.transpose(1, 2).reshape(b, t, c * f)
        x = self.out(x) if self.linear_name == "out" else self.linear(x)
        for start, step in self.slices:
            mask = mask[:, :, start::step]
        return x, mask


class FeedForward(nn.Module):
    """``w_2(dropout(act(w_1 x)))``."""

    def __init__(self, d: int, hidden: int, act: str, dropout: float = 0.0) -> None:
        super().__init__()
        self.w_1 = nn.Linear(d, hidden)
        self.activation = activation(act)
        self.dropout = nn.Dropout(dropout)
        self.w_2 = nn.Linear(hidden, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_2(self.dropout(self.activation(self.w_1(x))))


class MultiHeadedAttention(nn.Module):
    """Scaled dot-product attention; ``rel`` adds WeNet's per-key position term (``pos_bias_u/v``, ``linear_pos``)."""

    def __init__(self, heads: int, d: int, rel: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.h, self.d_k = heads, d // heads
        self.dropout = nn.Dropout(dropout)  # on the attention weights (training only)
        self.linear_q, self.linear_k, self.linear_v, self.linear_out = (nn.Linear(d, d) for _ in range(4))
        self.rel = rel
        if rel:
            self.linear_pos = nn.Linear(d, d, bias=False)
            self.pos_bias_u = nn.Parameter(torch.zeros(heads, self.d_k))
            self.pos_bias_v = nn.Parameter(torch.zeros(heads, self.d_k))

    def heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> (B, H, T, d_k)."""
        return x.view(x.size(0), -1, self.h, self.d_k).transpose(1, 2)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: Optional[torch.Tensor],
        pos_emb: Optional[torch.Tensor] = None,
        cache: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Attention output (B, Tq, d) and the keys/values (B, H, Tk, 2 d_k) after prepending ``cache``.

        ``mask`` (B, 1 or Tq, Tk) bool, True = visible; None: all visible.
        """
        q, k, v = self.heads(self.linear_q(query)), self.heads(self.linear_k(key)), self.heads(self.linear_v(value))
        if cache is not None:
            k = torch.cat([cache[..., : self.d_k], k], dim=2)
            v = torch.cat([cache[..., self.d_k :], v], dim=2)
        new_cache = torch.cat([k, v], dim=-1)
        if self.rel:
            assert pos_emb is not None
            p = self.heads(self.linear_pos(pos_emb))  # (1, H, Tk, d_k)
            q = q.transpose(1, 2)  # (B, Tq, H, d_k)
            ac = torch.matmul((q + self.pos_bias_u).transpose(1, 2), k.transpose(-2, -1))
            bd = torch.matmul((q + self.pos_bias_v).transpose(1, 2), p.transpose(-2, -1))
            scores = (ac + bd) / math.sqrt(self.d_k)
        else:
            scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask is not None:
            hidden = ~mask.unsqueeze(1)[:, :, :, : scores.size(-1)]
            attn = torch.softmax(scores.masked_fill(hidden, -float("inf")), dim=-1).masked_fill(hidden, 0.0)
        else:
            attn = torch.softmax(scores, dim=-1)
        x = torch.matmul(self.dropout(attn), v).transpose(1, 2).reshape(query.size(0), -1, self.h * self.d_k)
        return self.linear_out(x), new_cache


class ConvolutionModule(nn.Module):
    """pointwise_conv1 -> GLU -> depthwise conv (causal: left context only) -> norm -> act -> pointwise_conv2."""

    def __init__(self, d: int, kernel: int, act: str, norm: str, causal: bool, bias: bool = True, eps: float = 1e-5) -> None:
        super().__init__()
        self.pointwise_conv1 = nn.Conv1d(d, 2 * d, 1, bias=bias)
        self.lorder = kernel - 1 if causal else 0
        padding = 0 if causal else (kernel - 1) // 2
        self.depthwise_conv = nn.Conv1d(d, d, kernel, padding=padding, groups=d, bias=bias)
        if norm not in ("layer_norm", "batch_norm"):
            raise ConfigError(f"encoder_conf.cnn_module_norm {norm!r} is not supported (layer_norm or batch_norm)")
        self.use_layer_norm = norm == "layer_norm"
        self.norm = nn.LayerNorm(d, eps=eps) if self.use_layer_norm else nn.BatchNorm1d(d)
        self.pointwise_conv2 = nn.Conv1d(d, d, 1, bias=bias)
        self.activation = activation(act)

    def forward(self, x: torch.Tensor, mask_pad: Optional[torch.Tensor], cache: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, d), padding mask (B, 1, T) (None: none), cache (B, d, K-1) (None: zeros) -> (B, T, d), new cache."""
        x = x.transpose(1, 2)  # (B, d, T)
        if mask_pad is not None:
            x = x.masked_fill(~mask_pad, 0.0)
        new_cache = x.new_zeros(0, 0, 0)
        if self.lorder > 0:  # the cache (or zeros) goes before pointwise_conv1, as WeNet does
            x = torch.cat([cache, x], dim=2) if cache is not None else F.pad(x, (self.lorder, 0))
            new_cache = x[:, :, -self.lorder :]
        x = self.depthwise_conv(F.glu(self.pointwise_conv1(x), dim=1))
        if self.use_layer_norm:
            x = self.activation(self.norm(x.transpose(1, 2))).transpose(1, 2)
        else:
            x = self.activation(self.norm(x))
        x = self.pointwise_conv2(x)
        if mask_pad is not None:
            x = x.masked_fill(~mask_pad, 0.0)
        return x.transpose(1, 2), new_cache


class ConformerLayer(nn.Module):
    """Macaron FF (x0.5) -> self-attention -> convolution -> FF (x0.5) -> norm_final, pre-norm residuals."""

    def __init__(self, d: int, heads: int, hidden: int, act: str, rel: bool, macaron: bool, conv: Optional[ConvolutionModule],
                 eps: float, dropout: float = 0.0, att_dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(heads, d, rel, att_dropout)
        self.feed_forward = FeedForward(d, hidden, act, dropout)
        self.feed_forward_macaron = FeedForward(d, hidden, act, dropout) if macaron else None
        self.dropout = nn.Dropout(dropout)  # on each residual branch (training only)
        self.conv_module = conv
        self.norm_ff = nn.LayerNorm(d, eps=eps)
        self.norm_mha = nn.LayerNorm(d, eps=eps)
        if macaron:
            self.norm_ff_macaron = nn.LayerNorm(d, eps=eps)
        if conv is not None:
            self.norm_conv = nn.LayerNorm(d, eps=eps)
            self.norm_final = nn.LayerNorm(d, eps=eps)
        self.ff_scale = 0.5 if macaron else 1.0

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor, mask_pad: torch.Tensor,
                att_cache: Optional[torch.Tensor], cnn_cache: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, d) -> (B, T, d), new attention cache (B, H, Tk, 2 d_k), new conv cache (B, d, K-1)."""
        if self.feed_forward_macaron is not None:
            x = x + self.ff_scale * self.dropout(self.feed_forward_macaron(self.norm_ff_macaron(x)))
        h = self.norm_mha(x)
        att, new_att_cache = self.self_attn(h, h, h, mask, pos_emb, att_cache)
        x = x + self.dropout(att)
        new_cnn_cache = x.new_zeros(0, 0, 0)
        if self.conv_module is not None:
            conv, new_cnn_cache = self.conv_module(self.norm_conv(x), mask_pad, cnn_cache)
            x = x + self.dropout(conv)
        x = x + self.ff_scale * self.dropout(self.feed_forward(self.norm_ff(x)))
        if self.conv_module is not None:
            x = self.norm_final(x)
        return x, new_att_cache, new_cnn_cache


class TransformerLayer(nn.Module):
    """Self-attention then FF, pre-norm residuals (``norm1``, ``norm2``)."""

    def __init__(self, d: int, heads: int, hidden: int, act: str, rel: bool, eps: float, dropout: float = 0.0,
                 att_dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = MultiHeadedAttention(heads, d, rel, att_dropout)
        self.feed_forward = FeedForward(d, hidden, act, dropout)
        self.dropout = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(d, eps=eps)
        self.norm2 = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, pos_emb: torch.Tensor, mask_pad: torch.Tensor,
                att_cache: Optional[torch.Tensor], cnn_cache: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, T, d) -> (B, T, d), new attention cache, an empty conv cache (no convolution)."""
        h = self.norm1(x)
        att, new_att_cache = self.self_attn(h, h, h, mask, pos_emb, att_cache)
        x = x + self.dropout(att)
        return x + self.dropout(self.feed_forward(self.norm2(x))), new_att_cache, x.new_zeros(0, 0, 0)


class U2Encoder(nn.Module):
    """CMVN -> subsampling -> positional scaling -> blocks -> after_norm, with chunk masks and streaming caches."""

    def __init__(
        self,
        input_size: int,
        conformer: bool,
        output_size: int = 256,
        attention_heads: int = 4,
        linear_units: int = 2048,
        num_blocks: int = 6,
        input_layer: str = "conv2d",
        pos_enc_layer_type: Optional[str] = None,
        selfattention_layer_type: Optional[str] = None,
        normalize_before: bool = True,
        static_chunk_size: int = 0,
        use_dynamic_chunk: bool = False,
        use_dynamic_left_chunk: bool = False,
        macaron_style: bool = True,
        activation_type: Optional[str] = None,
        use_cnn_module: bool = True,
        cnn_module_kernel: int = 15,
        causal: bool = False,
        cnn_module_norm: str = "batch_norm",
        conv_bias: bool = True,
        norm_eps: float = 1e-5,
        final_norm: bool = True,
        layer_norm_type: str = "layer_norm",
        concat_after: bool = False,
        global_cmvn: bool = True,
        dropout_rate: float = 0.1,
        positional_dropout_rate: float = 0.1,
        attention_dropout_rate: float = 0.0,
        **_: object,
    ) -> None:
        super().__init__()
        if not normalize_before or concat_after or layer_norm_type != "layer_norm":
            raise ConfigError("U2 encoders need normalize_before: true, concat_after: false and layer_norm_type: layer_norm")
        pos = pos_enc_layer_type or ("rel_pos" if conformer else "abs_pos")
        if pos not in ("abs_pos", "rel_pos", "no_pos"):
            raise ConfigError(f"encoder_conf.pos_enc_layer_type {pos!r} is not supported (abs_pos, rel_pos or no_pos)")
        self.pos = pos
        rel = (selfattention_layer_type or ("rel_selfattn" if pos == "rel_pos" else "selfattn")) == "rel_selfattn"
        act = activation_type or ("swish" if conformer else "relu")
        d = output_size
        self.d, self.heads = d, attention_heads
        self.global_cmvn = GlobalCMVN(input_size) if global_cmvn else None
        self.embed = Conv2dSubsampling(input_layer, input_size, d)
        if conformer:
            def conv() -> Optional[ConvolutionModule]:
                if not use_cnn_module:
                    return None
                return ConvolutionModule(d, cnn_module_kernel, act, cnn_module_norm, causal, conv_bias, norm_eps)

            blocks: list[nn.Module] = [
                ConformerLayer(d, attention_heads, linear_units, act, rel, macaron_style, conv(), norm_eps, dropout_rate,
                               attention_dropout_rate)
                for _ in range(num_blocks)
            ]
        else:
            blocks = [TransformerLayer(d, attention_heads, linear_units, act, rel, norm_eps, dropout_rate, attention_dropout_rate)
                      for _ in range(num_blocks)]
        self.pos_dropout = nn.Dropout(positional_dropout_rate)  # on the embedded input and the positions (training only)
        self.encoders = nn.ModuleList(blocks)
        self.after_norm = nn.LayerNorm(d, eps=norm_eps) if final_norm else None
        self.static_chunk_size = static_chunk_size
        self.use_dynamic_chunk = use_dynamic_chunk
        self.cnn_kernel = cnn_module_kernel if conformer and use_cnn_module else 0
        self.causal = bool(causal)

    def output_size(self) -> int:
        """Width of the encoder output."""
        return self.d

    @property
    def streamable(self) -> bool:
        """Whether chunk sizes apply (dynamic or static chunk training)."""
        return self.use_dynamic_chunk or self.static_chunk_size > 0

    def embed_input(self, xs: torch.Tensor, mask: torch.Tensor, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """CMVN, subsampling, x sqrt(d) (and positions from ``offset`` (B,) for abs_pos): (B, T', d), the mask (B, 1, T')."""
        if self.global_cmvn is not None:
            xs = self.global_cmvn(xs)
        xs, mask = self.embed(xs, mask)
        if self.pos == "no_pos":
            return self.pos_dropout(xs), mask
        xs = xs * math.sqrt(self.d)
        if self.pos == "abs_pos":
            xs = xs + sinusoids(offset, xs.size(1), self.d).to(xs.dtype)
        return self.pos_dropout(xs), mask

    def pos_emb(self, start: torch.Tensor, length: int, dtype: torch.dtype) -> torch.Tensor:
        """The positional input of the blocks for keys ``start .. start+length-1`` per item (zeros for no_pos)."""
        pe = sinusoids(start, length, self.d).to(dtype)
        return torch.zeros_like(pe) if self.pos == "no_pos" else self.pos_dropout(pe)

    def forward(self, xs: torch.Tensor, lens: torch.Tensor, chunk_size: int = -1, left_chunks: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, D) and lengths (B,) -> (B, T', d) and the valid-frame mask (B, 1, T').

        ``chunk_size`` > 0 limits attention to chunks (and ``left_chunks`` chunks before; < 0: all);
        -1 is full context. Models trained without chunks ignore both, as WeNet does.
        """
        mask = (torch.arange(xs.size(1), device=xs.device).unsqueeze(0) < lens.unsqueeze(1)).unsqueeze(1)
        start = torch.zeros(1, dtype=torch.long, device=xs.device)
        xs, mask = self.embed_input(xs, mask, start)
        pos_emb = self.pos_emb(start, xs.size(1), xs.dtype)
        att_mask = mask
        if self.streamable:
            if not self.use_dynamic_chunk:
                chunk_size = self.static_chunk_size
            if chunk_size > 0:
                att_mask = mask & chunk_mask(xs.size(1), chunk_size, left_chunks, xs.device).unsqueeze(0)
        for layer in self.encoders:
            xs, _, _ = layer(xs, att_mask, pos_emb, mask, None, None)
        if self.after_norm is not None:
            xs = self.after_norm(xs)
        return xs, mask

    def forward_chunks(
        self, xs: torch.Tensor, lens: torch.Tensor, offsets: torch.Tensor, att_cache: Optional[torch.Tensor],
        cache_lens: torch.Tensor, cnn_cache: Optional[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The next chunk of B streams at once, each at its own position.

        xs (B, T, D) raw fbank padded, lens (B,); offsets (B,): encoder frames each stream has emitted;
        att_cache (L, B, H, Tc, 2 d_k) each stream's cached keys/values right-aligned, ``cache_lens`` (B,)
        of them valid (None: none); cnn_cache (L, B, d, K-1) (None: zeros).
        -> output (B, C, d), its valid lengths (B,), keys/values (L, B, H, Tc+C, 2 d_k) (cache then chunk),
        conv caches (L, B, d, K-1). Every cached and current key of a stream is visible to its chunk.
        """
        mask = (torch.arange(xs.size(1), device=xs.device).unsqueeze(0) < lens.unsqueeze(1)).unsqueeze(1)
        xs, mask = self.embed_input(xs, mask, offsets)
        cache_t = att_cache.size(3) if att_cache is not None else 0
        keys = torch.arange(cache_t + xs.size(1), device=xs.device).unsqueeze(0)
        visible = (keys >= cache_t - cache_lens.unsqueeze(1)) & torch.cat([torch.ones_like(keys[:, :cache_t], dtype=torch.bool).expand(
            xs.size(0), -1), mask.squeeze(1)], dim=1)
        pos_emb = self.pos_emb(offsets - cache_t, cache_t + xs.size(1), xs.dtype)
        new_att, new_cnn = [], []
        for i, layer in enumerate(self.encoders):
            xs, att, cnn = layer(xs, visible.unsqueeze(1), pos_emb, mask,
                                 att_cache[i] if att_cache is not None else None, cnn_cache[i] if cnn_cache is not None else None)
            new_att.append(att)
            new_cnn.append(cnn)
        if self.after_norm is not None:
            xs = self.after_norm(xs)
        return xs, mask.squeeze(1).sum(-1), torch.stack(new_att), torch.stack(new_cnn)

    def forward_chunk(
        self, xs: torch.Tensor, offset: int, required_cache_size: int, att_cache: torch.Tensor, cnn_cache: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """WeNet's ``forward_chunk`` (one stream): raw fbank (1, T, D) -> (1, C, d), att_cache (L, H, Tc', 2 d_k),
        cnn_cache (L, 1, d, K-1). ``required_cache_size`` < 0 keeps every key, 0 none, N > 0 the last N."""
        device = xs.device
        att = att_cache.unsqueeze(1) if att_cache.size(0) > 0 else None
        out, _, new_att, new_cnn = self.forward_chunks(
            xs, torch.tensor([xs.size(1)], device=device), torch.tensor([offset], device=device), att,
            torch.tensor([att_cache.size(2) if att_cache.size(0) > 0 else 0], device=device),
            cnn_cache if cnn_cache.size(0) > 0 else None,
        )
        keys = new_att.size(3)
        start = 0 if required_cache_size < 0 else keys if required_cache_size == 0 else max(keys - required_cache_size, 0)
        return out, new_att[:, 0, :, start:], new_cnn


class ConformerEncoder(U2Encoder):
    """WeNet's ``conformer`` encoder."""

    def __init__(self, input_size: int, **conf: object) -> None:
        super().__init__(input_size, True, **conf)  # type: ignore[arg-type]


class TransformerEncoder(U2Encoder):
    """WeNet's ``transformer`` encoder."""

    def __init__(self, input_size: int, **conf: object) -> None:
        super().__init__(input_size, False, **conf)  # type: ignore[arg-type]
