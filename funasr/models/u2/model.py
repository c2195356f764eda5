"""U2 / U2++ (WeNet's ``asr_model``): a chunk-attention encoder, a CTC head and an attention decoder.

Tensor methods only; the searches (funasr.search) and the engine (engine.py) use them.
Parameter names equal WeNet's checkpoint keys (``encoder.``, ``decoder.``, ``ctc.ctc_lo.``).
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from funasr import registry
from funasr.errors import ConfigError
from funasr.models.u2.decoder import BiTransformerDecoder, TransformerDecoder
from funasr.models.u2.encoder import ConformerEncoder, TransformerEncoder, U2Encoder

ENCODERS = {"conformer": ConformerEncoder, "transformer": TransformerEncoder}
DECODERS = {"transformer": TransformerDecoder, "bitransformer": BiTransformerDecoder}


def reverse_hyps(hyps: torch.Tensor, hyps_lens: torch.Tensor, eos: int) -> torch.Tensor:
    """Decoder inputs ``<sos> + hyp`` (N, L+1) and their lengths (N,) -> ``<sos> + hyp`` reversed, padded with ``<eos>``."""
    lens = hyps_lens - 1
    idx = torch.arange(hyps.size(1) - 1, device=hyps.device).unsqueeze(0)
    valid = idx < lens.unsqueeze(1)
    rev = torch.gather(hyps[:, 1:], 1, ((lens.unsqueeze(1) - 1 - idx) * valid).clamp(min=0))
    return torch.cat([hyps[:, :1], torch.where(valid, rev, torch.full_like(rev, eos))], dim=1)


class CTC(nn.Module):
    """``ctc_lo``: encoder output -> per-frame token logits."""

    def __init__(self, vocab_size: int, d: int) -> None:
        super().__init__()
        self.ctc_lo = nn.Linear(d, vocab_size)

    def log_softmax(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d) -> log-probabilities (B, T, V)."""
        return torch.log_softmax(self.ctc_lo(x), dim=-1)


@registry.register()
class U2Model(nn.Module):
    """Encoder + CTC + (bi)transformer decoder, as WeNet's ``ASRModel`` (``model: asr_model`` of its train.yaml)."""

    def __init__(self, encoder: U2Encoder, decoder: nn.Module, vocab_size: int, sos: int, eos: int, blank_id: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.ctc = CTC(vocab_size, encoder.output_size())
        self.vocab_size, self.sos, self.eos, self.blank_id = vocab_size, sos, eos, blank_id

    @classmethod
    def from_config(cls, cfg: dict[str, Any], input_size: Optional[int], vocab_size: Optional[int]) -> "U2Model":
        """Build from a WeNet ``train.yaml`` as read by funasr.models.u2.config."""
        for key, table in (("encoder", ENCODERS), ("decoder", DECODERS)):
            if cfg.get(key) not in table:
                raise ConfigError(f"WeNet {key} {cfg.get(key)!r} is not supported (choose from {', '.join(table)})")
        input_size = int(cfg.get("input_dim") or input_size or 80)
        vocab_size = int(cfg.get("output_dim") or vocab_size or 0)
        enc_conf = dict(cfg.get("encoder_conf") or {})
        encoder = ENCODERS[cfg["encoder"]](input_size, global_cmvn=bool(cfg.get("cmvn")), **enc_conf)
        decoder = DECODERS[cfg["decoder"]](vocab_size, encoder.output_size(), **dict(cfg.get("decoder_conf") or {}))
        sos, eos, blank = cfg["u2_special_ids"]
        return cls(encoder, decoder, vocab_size, sos, eos, blank)

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the encoder weights (the compute precision)."""
        return next(self.encoder.parameters()).dtype

    @property
    def bidirectional(self) -> bool:
        """Whether the decoder has a right-to-left half (U2++)."""
        return isinstance(self.decoder, BiTransformerDecoder)

    def encode(self, feats: torch.Tensor, lens: torch.Tensor, chunk_size: int = -1, left_chunks: int = -1) -> tuple[torch.Tensor, torch.Tensor]:
        """Fbank (B, T, 80) and lengths -> encoder output (B, T', d) and its lengths (B,)."""
        enc, mask = self.encoder(feats.to(self.dtype), lens, chunk_size, left_chunks)
        return enc, mask.squeeze(1).sum(-1)

    def ctc_log_probs(self, enc: torch.Tensor) -> torch.Tensor:
        """CTC log-probabilities (B, T', V) in float32."""
        return self.ctc.log_softmax(enc).float()

    def decoder_log_probs(self, enc: torch.Tensor, hyps: torch.Tensor, hyps_lens: torch.Tensor,
                          reverse: bool = False) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """One utterance's encoder output (1, T', d), decoder inputs ``<sos> + hyp`` padded with ``<eos>`` (N, L+1)
        and their lengths (N,) -> left-to-right log-probs (N, L+1, V) and, when ``reverse`` and U2++, right-to-left ones."""
        n = hyps.size(0)
        memory = enc.expand(n, -1, -1)
        memory_mask = torch.ones(n, 1, enc.size(1), dtype=torch.bool, device=enc.device)
        if not self.bidirectional:
            return torch.log_softmax(self.decoder(memory, memory_mask, hyps, hyps_lens).float(), -1), None
        r_hyps = None
        if reverse:
            r_hyps = reverse_hyps(hyps, hyps_lens, self.eos)
        left, right = self.decoder(memory, memory_mask, hyps, hyps_lens, r_hyps)
        return torch.log_softmax(left.float(), -1), None if right is None else torch.log_softmax(right.float(), -1)

    def encode_chunk_by_chunk(self, feats: torch.Tensor, chunk_size: int, left_chunks: int = -1) -> torch.Tensor:
        """Fbank (1, T, 80) through ``forward_chunk`` window by window, as a stream would be: (1, T', d)."""
        embed = self.encoder.embed
        context, stride = embed.right_context + 1, embed.rate * chunk_size
        window = (chunk_size - 1) * embed.rate + context
        att_cache = feats.new_zeros(0, 0, 0, 0)
        cnn_cache = feats.new_zeros(0, 0, 0, 0)
        outs, offset = [], 0
        for cur in range(0, feats.size(1) - context + 1, stride):
            out, att_cache, cnn_cache = self.encoder.forward_chunk(
                feats[:, cur : cur + window].to(self.dtype), offset, chunk_size * left_chunks, att_cache, cnn_cache
            )
            outs.append(out)
            offset += out.size(1)
        return torch.cat(outs, dim=1)
