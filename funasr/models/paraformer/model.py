"""Paraformer and BiCifParaformer: SAN-M encoder -> CIF predictor -> SAN-M decoder, greedy tokens.

The models expose tensor methods only; their engine (engine.py) runs them on numpy batches
and :class:`funasr.tasks.asr.ASRTask` turns the result into text and timestamps.
"""
from __future__ import annotations

from typing import Any, ClassVar, Optional

import torch
from torch import nn

from funasr import registry
from funasr.errors import ConfigError
from funasr.models.paraformer.cif_predictor import CifOutput, CifPredictorV3
from funasr.models.paraformer.decoding import BLANK_ID, EOS, SOS


def build_parts(cfg: dict[str, Any], input_size: Optional[int], vocab_size: Optional[int]) -> dict[str, nn.Module]:
    """Encoder, decoder and predictor named by ``cfg``, sized from the frontend and the token list."""
    for key in ("encoder", "decoder", "predictor"):
        if not cfg.get(key):
            raise ConfigError(f"the config of model {cfg.get('model')!r} names no {key}")
    if not input_size or not vocab_size:
        raise ConfigError(
            f"{cfg.get('model')} needs the frontend (input_size) and the token list (vocab_size) "
            f"to be built; got input_size={input_size}, vocab_size={vocab_size}"
        )
    encoder = registry.build(cfg["encoder"], input_size=input_size, **dict(cfg.get("encoder_conf") or {}))
    decoder = registry.build(
        cfg["decoder"], vocab_size=vocab_size, encoder_output_size=encoder.output_size(), **dict(cfg.get("decoder_conf") or {})
    )
    predictor = registry.build(cfg["predictor"], **dict(cfg.get("predictor_conf") or {}))
    return {"encoder": encoder, "decoder": decoder, "predictor": predictor}


def model_conf(cfg: dict[str, Any]) -> dict[str, Any]:
    """``model_conf`` without the sizes, which come from the frontend and the token list."""
    return {k: v for k, v in (cfg.get("model_conf") or {}).items() if k not in ("input_size", "vocab_size")}


@registry.register()
class Paraformer(nn.Module):
    """Non-autoregressive ASR: one decoder pass over CIF acoustic embeddings, greedy argmax per token."""

    float32_parts: ClassVar[tuple[str, ...]] = ("predictor",)  # CIF firing is a running sum

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        predictor: nn.Module,
        vocab_size: int,
        blank_id: int = BLANK_ID,
        sos: int = SOS,
        eos: int = EOS,
        **_: Any,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.predictor = predictor
        self.vocab_size = vocab_size
        self.blank_id, self.sos, self.eos = blank_id, sos, eos

    @classmethod
    def from_config(cls, cfg: dict[str, Any], input_size: Optional[int], vocab_size: Optional[int]) -> "Paraformer":
        """Build from a resolved config (``encoder(_conf)``, ``decoder(_conf)``, ``predictor(_conf)``, ``model_conf``)."""
        parts = build_parts(cfg, input_size, vocab_size)
        return cls(**parts, vocab_size=vocab_size, **model_conf(cfg))

    def keep_float32(self) -> None:
        """Put the parts that must run in float32 back to float32 after a half-precision cast."""
        for name in self.float32_parts:
            part = getattr(self, name, None)
            if part is not None:
                part.float()

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the encoder weights (the compute precision)."""
        return next(self.encoder.parameters()).dtype

    def encode(self, feats: torch.Tensor, lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features (B, T, 560) and lengths -> encoder output (B, T, D), zero past each length."""
        return self.encoder(feats.to(self.dtype), lens)

    def predict(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> CifOutput:
        """CIF over the encoder output (weights and firing in float32 whatever the model precision)."""
        return self.predictor(enc, enc_lens)

    def decode(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, cif: CifOutput, bias: Optional[torch.Tensor] = None, **_: Any
    ) -> torch.Tensor:
        """Log-probabilities (B, N, vocab) of each CIF token (``bias`` is for the hotword models)."""
        logits = self.decoder(enc, enc_lens, cif.embeds.to(enc.dtype), cif.token_num)
        return torch.log_softmax(logits.float(), dim=-1)

    @property
    def always_timestamps(self) -> bool:
        """Whether every result carries timestamps (models with the upsampled timestamp head)."""
        return False


@registry.register()
class BiCifParaformer(Paraformer):
    """Paraformer with CifPredictorV3: timestamps from the 3x upsampled second CIF head, always."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.predictor, CifPredictorV3):
            raise ConfigError(f"{type(self).__name__} needs predictor CifPredictorV3, got {type(self.predictor).__name__}")

    @property
    def always_timestamps(self) -> bool:
        """BiCif results always carry timestamps."""
        return True
