"""CTTransformerStreaming: CTTransformer over a SANMVadEncoder, whose attention never looks into text not yet seen.

Every encoder layer but the last attends causally; the last one uses the VAD mask, which
keeps the words carried from earlier calls (the first ``vad_index``) from seeing the new ones.
"""
from __future__ import annotations

import torch

from funasr import registry
from funasr.models.ct_transformer.model import CTTransformer
from funasr.models.sanm import SANMEncoder, length_mask


def vad_attention_mask(length: int, vad_indexes: torch.Tensor) -> torch.Tensor:
    """(B,) VAD indexes -> (B, length, length) bool: all True except rows < index-1 at columns >= index."""
    pos = torch.arange(length, device=vad_indexes.device)
    idx = vad_indexes.to(pos.dtype)[:, None, None]
    return ~((pos[None, :, None] < idx - 1) & (pos[None, None, :] >= idx))


@registry.register()
class SANMVadEncoder(SANMEncoder):
    """SANMEncoder with causal self-attention in all layers but the last, whose mask is the VAD mask."""

    def forward(self, xs: torch.Tensor, lens: torch.Tensor, vad_indexes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """xs (B, T, input_size), lens (B,), vad_indexes (B,) -> (out (B, T, output_size), lens)."""
        t = xs.shape[1]
        valid = length_mask(lens, t)  # (B, T)
        causal = torch.ones(t, t, dtype=torch.bool, device=xs.device).tril()[None] & valid[:, None, :]  # (B, T, T)
        layers = len(self.encoders0) + len(self.encoders)
        masks = [causal] * (layers - 1) + [vad_attention_mask(t, vad_indexes) & valid[:, None, :] if self.encoders else causal]
        return self.run_layers(xs, valid[:, :, None].to(xs.dtype), masks), lens


@registry.register()
class CTTransformerStreaming(CTTransformer):
    """Realtime punctuation: one class per word, the first ``vad_index`` words (carried from the last call) masked from the rest."""

    def forward(self, ids: torch.Tensor, lens: torch.Tensor, vad_indexes: torch.Tensor) -> torch.Tensor:
        """Token ids (B, L), lengths (B,), VAD indexes (B,) -> punctuation logits (B, L, len(punc_list))."""
        h, _ = self.encoder(self.embed(ids), lens, vad_indexes)  # (B, L, att_unit)
        return self.decoder(h)
