"""CT-Transformer on onnxruntime: a ``PuncNet`` (funasr.engines) around the exported graph (numpy only)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from funasr.models.ct_transformer.family import INPUTS, TEXT_LENGTHS


class CTTransformerOnnx:
    """``model``: ``inputs`` i32 (1, L), ``text_lengths`` i32 (1,) -> ``logits`` (1, L, classes)."""

    def __init__(self, load: Callable[[str], Any], cfg: dict[str, Any]) -> None:
        self.graph = load("model")

    def predict(self, ids: np.ndarray) -> np.ndarray:
        """Punctuation class per token id (L,) -> (L,)."""
        (logits,) = self.graph(**{INPUTS: ids.astype(np.int32)[None], TEXT_LENGTHS: np.array([len(ids)], dtype=np.int32)})
        return logits[0].argmax(-1)
