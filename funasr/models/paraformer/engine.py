"""The Paraformer family on PyTorch: an ``ASRNet`` (funasr.engines) around Paraformer, BiCif, SeACo or Contextual."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from funasr.engines import Recognition
from funasr.engines.torch import TorchEngine
from funasr.models.paraformer.cif import cif_stamp_inputs, upsampled_stamp_inputs
from funasr.models.paraformer.cif_predictor import CifOutput, CifPredictorV3
from funasr.models.paraformer.decoding import ParaformerNet


class ParaformerEngine(TorchEngine, ParaformerNet):
    """Encoder -> CIF -> decoder of the module, greedy tokens, timestamp inputs; numpy in and out."""

    def __init__(self, module: nn.Module, cfg: dict[str, Any], device: Optional[str] = None, dtype: Optional[str] = None) -> None:
        TorchEngine.__init__(self, module, cfg, device, dtype)
        ParaformerNet.__init__(self, cfg)

    @property
    def always_timestamps(self) -> bool:
        """Whether the module has the timestamp head (BiCif, SeACo with CifPredictorV3)."""
        return bool(self.module.always_timestamps)

    @property
    def timestamps_on_request(self) -> bool:
        """The module computes timestamp inputs whenever asked."""
        return True

    @property
    def takes_hotwords(self) -> bool:
        """Whether the module encodes hotwords (SeACo, Contextual)."""
        return hasattr(self.module, "encode_hotwords")

    @torch.inference_mode()
    def recognize(
        self, feats: np.ndarray, lens: np.ndarray, bias: Optional[torch.Tensor] = None, timestamps: bool = False, **options: Any
    ) -> Recognition:
        """Features (B, T, D) and lengths (B,) -> tokens (greedy, or with ``options["lm"]``) and timestamp inputs when
        asked or always given."""
        model = self.module
        lm = options.pop("lm", None)
        enc, enc_lens = model.encode(self.tensor(feats), self.tensor(lens))
        cif = model.predict(enc, enc_lens)
        want_ts = timestamps or self.always_timestamps
        if cif.embeds.shape[1] == 0:
            empty = [np.zeros(0, dtype=np.float32)] * len(lens) if want_ts else None
            return Recognition([[] for _ in lens], empty, empty)
        log_probs = model.decode(enc, enc_lens, cif, bias=bias, **options)
        out = Recognition(self.choose(self.numpy(log_probs), self.numpy(cif.token_num), lm))
        if want_ts:
            out.stamp_weights, out.stamp_fires, out.upsample_rate = self.stamp_inputs(enc, enc_lens, cif)
        return out

    def stamp_inputs(self, enc: torch.Tensor, enc_lens: torch.Tensor, cif: CifOutput) -> tuple[list, list, int]:
        """Per-item timestamp inputs and their rate: from the upsampled head (CifPredictorV3), else from the CIF."""
        predictor = self.module.predictor
        lens = self.numpy(enc_lens)
        if isinstance(predictor, CifPredictorV3):
            rate = predictor.upsample_times
            us_alphas = self.numpy(predictor.upsampled_alphas(enc, enc_lens, cif.token_num))
            return (*upsampled_stamp_inputs(us_alphas, lens, rate), rate)
        return (*cif_stamp_inputs(self.numpy(cif.alphas), self.numpy(cif.peaks), lens), 1)

    @torch.inference_mode()
    def encode_hotwords(self, ids: list[list[int]]) -> torch.Tensor:
        """Hotword id lists (sentinel last) -> the module's hotword embeddings (H, D)."""
        return self.module.encode_hotwords(ids)
