"""CTTransformerStreaming on PyTorch: a ``RealtimePuncNet`` (funasr.engines) around the module."""
from __future__ import annotations

import numpy as np
import torch

from funasr.engines.torch import TorchEngine
from funasr.models.ct_transformer_streaming.text import pad_batch


class CTTransformerStreamingEngine(TorchEngine):
    """Windows of token ids (each with its VAD index) in, the most likely punctuation class per token out."""

    @torch.inference_mode()
    def predict_batch(self, windows: list[np.ndarray], vad_indexes: list[int]) -> list[np.ndarray]:
        """Class ids (L_i,) of each window (L_i,) of token ids, the windows run as one padded batch."""
        ids, lens = pad_batch(windows)
        logits = self.module(self.tensor(ids), self.tensor(lens), self.tensor(np.asarray(vad_indexes, dtype=np.int64)))
        classes = self.numpy(logits.argmax(-1))
        return [classes[i, :n] for i, n in enumerate(lens)]
