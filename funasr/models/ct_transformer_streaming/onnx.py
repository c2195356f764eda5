"""CTTransformerStreaming on onnxruntime: a ``RealtimePuncNet`` (funasr.engines) around the exported graph (numpy only)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from funasr.models.ct_transformer_streaming.family import INPUTS, SUB_MASKS, TEXT_LENGTHS, VAD_MASKS
from funasr.models.ct_transformer_streaming.text import attention_masks, pad_batch


class CTTransformerStreamingOnnx:
    """``model``: ``inputs`` i32 (B, L), ``text_lengths`` i32 (B,), ``vad_masks`` and ``sub_masks`` f32 (B, 1, L, L) -> ``logits``.

    ``sub_masks`` gets the causal mask the PyTorch model uses (FunASR's runtimes pass the VAD
    mask there too, which changes the logits of the layers before the last).
    """

    def __init__(self, load: Callable[[str], Any], cfg: dict[str, Any]) -> None:
        self.graph = load("model")

    def predict_batch(self, windows: list[np.ndarray], vad_indexes: list[int]) -> list[np.ndarray]:
        """Class ids (L_i,) of each window (L_i,) of token ids, the windows run as one padded batch."""
        ids, lens = pad_batch(windows)
        vad, causal = attention_masks(ids.shape[1], vad_indexes)
        feed = {INPUTS: ids.astype(np.int32), TEXT_LENGTHS: lens.astype(np.int32), VAD_MASKS: vad, SUB_MASKS: causal}
        (logits,) = self.graph(**feed)
        classes = logits.argmax(-1)
        return [classes[i, :n] for i, n in enumerate(lens)]
