"""CTTransformer: word embeddings -> SAN-M encoder -> a linear layer scoring each punctuation class."""
from __future__ import annotations

from typing import Any, Optional, Sequence

import torch
from torch import nn

from funasr import registry
from funasr.errors import ConfigError


@registry.register()
class CTTransformer(nn.Module):
    """Controllable time-delay Transformer (offline): one punctuation class per input word."""

    def __init__(
        self,
        vocab_size: int,
        embed_unit: int,
        att_unit: int,
        encoder: nn.Module,
        punc_list: Sequence[str],
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_unit)
        self.decoder = nn.Linear(att_unit, len(punc_list))
        self.encoder = encoder

    @classmethod
    def from_config(cls, cfg: dict[str, Any], input_size: Optional[int] = None, vocab_size: Optional[int] = None) -> "CTTransformer":
        """Build from a resolved config (``model_conf``, ``encoder``, ``encoder_conf``); ``vocab_size`` = token count."""
        if not vocab_size:
            raise ConfigError("CTTransformer needs the token list (tokenizer_conf.token_list) to size its embedding")
        conf = cfg.get("model_conf") or {}
        if "punc_list" not in conf:
            raise ConfigError("CTTransformer config lacks model_conf.punc_list")
        encoder = registry.build(cfg["encoder"], **(cfg.get("encoder_conf") or {}))
        return cls(
            vocab_size=vocab_size,
            embed_unit=conf.get("embed_unit", 128),
            att_unit=conf.get("att_unit", 256),
            encoder=encoder,
            punc_list=conf["punc_list"],
        )

    def forward(self, ids: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Token ids (B, L) and lengths (B,) -> punctuation logits (B, L, len(punc_list))."""
        x = self.embed(ids)  # (B, L, embed_unit)
        h, _ = self.encoder(x, lens)  # (B, L, att_unit)
        return self.decoder(h)
