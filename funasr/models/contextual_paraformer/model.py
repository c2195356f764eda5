"""ContextualParaformer: Paraformer whose decoder attends to hotword embeddings (bias_embed + LSTM)."""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from funasr import registry
from funasr.errors import ConfigError, FunASRError
from funasr.models.contextual_paraformer.decoder import ContextualParaformerDecoder
from funasr.models.paraformer.cif_predictor import CifOutput
from funasr.models.paraformer.model import Paraformer
from funasr.models.seaco_paraformer.model import pack_last_states, pad_ids


@registry.register()
class ContextualParaformer(Paraformer):
    """Paraformer + ``bias_embed`` + 1-layer ``bias_encoder`` LSTM; the bias path always runs.

    Without hotwords it attends to the sentinel ``[sos]`` alone: the family declares
    ``always_bias``, so the task passes ``encode_hotwords([[sos]])`` then.
    """

    float32_parts = ("predictor", "bias_encoder")

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        predictor: nn.Module,
        vocab_size: int,
        inner_dim: int = 256,
        bias_encoder_type: str = "lstm",
        use_decoder_embedding: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(encoder, decoder, predictor, vocab_size, **kwargs)
        if bias_encoder_type != "lstm":
            raise ConfigError(f"ContextualParaformer supports bias_encoder_type 'lstm' only (got {bias_encoder_type!r})")
        if not isinstance(decoder, ContextualParaformerDecoder):
            raise ConfigError(f"ContextualParaformer needs decoder ContextualParaformerDecoder, got {type(decoder).__name__}")
        self.bias_encoder = nn.LSTM(inner_dim, inner_dim, 1, batch_first=True)
        self.bias_embed = nn.Embedding(vocab_size, inner_dim)
        self.use_decoder_embedding = use_decoder_embedding

    def encode_hotwords(self, hotwords: list[list[int]]) -> torch.Tensor:
        """Hotword id lists (sentinel last) -> (H, inner_dim): the LSTM's final hidden state per hotword."""
        ids, lengths = pad_ids(hotwords, self.bias_embed.weight.device)
        embed = self.decoder.embed if self.use_decoder_embedding else self.bias_embed
        _, h_n = pack_last_states(self.bias_encoder, embed(ids), lengths)
        return h_n[-1]

    def decode(
        self,
        enc: torch.Tensor,
        enc_lens: torch.Tensor,
        cif: CifOutput,
        bias: Optional[torch.Tensor] = None,
        clas_scale: float = 1.0,
        **_: Any,
    ) -> torch.Tensor:
        """Log-probabilities (B, N, vocab), biased by ``bias`` (H, D) hotword embeddings (required)."""
        if bias is None:
            raise FunASRError("ContextualParaformer decodes with hotword embeddings; for none pass encode_hotwords([[sos]])")
        hotwords = bias.to(enc.dtype)[None].expand(enc.shape[0], -1, -1)
        logits = self.decoder(enc, enc_lens, cif.embeds.to(enc.dtype), cif.token_num, hotwords, clas_scale)
        return torch.log_softmax(logits.float(), dim=-1)
