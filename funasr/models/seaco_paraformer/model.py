"""SeacoParaformer (``paraformer-zh``): Paraformer with semantic-augmented contextual hotword biasing.

Hotwords are embedded with the main decoder's embedding and a 2-layer LSTM. A second
SAN-M decoder (``seaco_decoder``) attends from the CIF embeddings and from the decoder
hidden state to the hotwords; where its prediction is not ``NO_BIAS`` it replaces the
decoder's. With more than ``nfilter`` hotwords the attention of the last seaco layer picks
the ``nfilter`` most attended ones first (per utterance).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from funasr import registry
from funasr.errors import ConfigError
from funasr.models.paraformer.cif_predictor import CifOutput, CifPredictorV3
from funasr.models.paraformer.model import Paraformer, build_parts, model_conf
from funasr.models.sanm import length_mask

ASF_NFILTER = 50


def pack_last_states(lstm: nn.LSTM, embeds: torch.Tensor, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Run ``lstm`` over padded (H, L, D) ``embeds``: (output at each last valid step (H, D'), final h_n)."""
    embeds = embeds.to(lstm.weight_ih_l0.dtype)
    packed = nn.utils.rnn.pack_padded_sequence(embeds, lengths, batch_first=True, enforce_sorted=False)
    out, (h_n, _) = lstm(packed)
    out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    last = out[torch.arange(len(lengths)), torch.tensor(lengths) - 1]
    return last, h_n


def pad_ids(hotwords: list[list[int]], device: torch.device) -> tuple[torch.Tensor, list[int]]:
    """Hotword id lists -> (H, L) long tensor padded with 0, and their lengths."""
    lengths = [len(h) for h in hotwords]
    ids = torch.zeros(len(hotwords), max(lengths), dtype=torch.long)
    for i, h in enumerate(hotwords):
        ids[i, : len(h)] = torch.tensor(h, dtype=torch.long)
    return ids.to(device), lengths


@registry.register()
class SeacoParaformer(Paraformer):
    """Paraformer + bias encoder + seaco_decoder + hotword_output_layer."""

    float32_parts = ("predictor", "bias_encoder", "lstm_proj")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        predictor: nn.Module,
        seaco_decoder: nn.Module,
        vocab_size: int,
        inner_dim: int = 256,
        bias_encoder_type: str = "lstm",
        bias_encoder_bid: bool = False,
        NO_BIAS: int = 8377,  # noqa: N803 (the config key)
        **kwargs: Any,
    ) -> None:
        super().__init__(encoder, decoder, predictor, vocab_size, **kwargs)
        if bias_encoder_type != "lstm":
            raise ConfigError(f"SeacoParaformer supports bias_encoder_type 'lstm' only (got {bias_encoder_type!r})")
        self.bias_encoder = nn.LSTM(inner_dim, inner_dim, 2, batch_first=True, bidirectional=bias_encoder_bid)
        self.lstm_proj = nn.Linear(inner_dim * 2, inner_dim) if bias_encoder_bid else None
        self.seaco_decoder = seaco_decoder
        self.hotword_output_layer = nn.Linear(inner_dim, vocab_size)
        self.no_bias = NO_BIAS

    @classmethod
    def from_config(cls, cfg: dict[str, Any], input_size: Optional[int], vocab_size: Optional[int]) -> "SeacoParaformer":
        """Build from a resolved config; ``seaco_decoder(_conf)`` names the hotword decoder."""
        parts = build_parts(cfg, input_size, vocab_size)
        conf = model_conf(cfg)
        if not cfg.get("seaco_decoder"):
            raise ConfigError("the SeacoParaformer config names no seaco_decoder")
        seaco_decoder = registry.build(
            cfg["seaco_decoder"],
            vocab_size=vocab_size,
            encoder_output_size=conf.get("inner_dim", 256),
            **dict(cfg.get("seaco_decoder_conf") or {}),
        )
        return cls(**parts, seaco_decoder=seaco_decoder, vocab_size=vocab_size, **conf)

    @property
    def always_timestamps(self) -> bool:
        """Timestamps come with every result when the predictor has the timestamp head."""
        return isinstance(self.predictor, CifPredictorV3)

    def encode_hotwords(self, hotwords: list[list[int]]) -> torch.Tensor:
        """Hotword id lists (sentinel last) -> (H, inner_dim): the LSTM output at each hotword's last token."""
        ids, lengths = pad_ids(hotwords, self.hotword_output_layer.weight.device)
        last, _ = pack_last_states(self.bias_encoder, self.decoder.embed(ids), lengths)
        return last if self.lstm_proj is None else self.lstm_proj(last.to(self.lstm_proj.weight.dtype))

    def decode(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        cif: CifOutput,
        bias: Optional[torch.Tensor] = None,
        nfilter: int = ASF_NFILTER,
        **_: Any,
    ) -> torch.Tensor:
        """Log-probabilities (B, N, vocab); with ``bias`` (H, D) hotword embeddings, merged with the hotword branch."""
        embeds = cif.embeds.to(enc.dtype)
        hidden = self.decoder.hidden(enc, enc_lens, embeds, cif.token_num)
        dec_logp = torch.log_softmax(self.decoder.output_layer(hidden).float(), dim=-1)
        if bias is None:
            return dec_logp
        b, n, _ = hidden.shape
        h = bias.shape[0]
        hotwords = bias.to(hidden.dtype)[None].expand(b, h, -1)
        if 0 < nfilter < h:
            hotwords = self.filter_hotwords(hotwords, hidden, cif.token_num, nfilter)
        hw_lens = torch.full((b,), hotwords.shape[1], device=hidden.device)
        cif_att = self.seaco_decoder(hotwords, hw_lens, embeds, cif.token_num)
        dec_att = self.seaco_decoder(hotwords, hw_lens, hidden, cif.token_num)
        dha_logp = torch.log_softmax(self.hotword_output_layer(cif_att + dec_att).float(), dim=-1)
        keep_decoder = (dha_logp.argmax(-1) == self.no_bias)[..., None]
        return torch.where(keep_decoder, dec_logp, dha_logp)

    def filter_hotwords(self, hotwords: torch.Tensor, hidden: torch.Tensor, token_num: torch.Tensor, nfilter: int) -> torch.Tensor:
        """Keep, per utterance, the ``nfilter`` hotwords its tokens attend to most, plus the sentinel (last)."""
        b, h, _ = hotwords.shape
        hw_lens = torch.full((b,), h, device=hidden.device)
        probs = self.seaco_decoder.hotword_attention(hotwords, hw_lens, hidden, token_num)  # (B, heads, N, H)
        valid = length_mask(token_num, hidden.shape[1])[:, None, :, None]
        scores = (probs * valid).sum(dim=(1, 2))  # (B, H)
        top = torch.topk(scores, min(nfilter, h - 1), dim=-1).indices
        keep = torch.cat([top, torch.full((b, 1), h - 1, device=top.device, dtype=top.dtype)], dim=1)
        return torch.gather(hotwords, 1, keep[..., None].expand(-1, -1, hotwords.shape[2]))
