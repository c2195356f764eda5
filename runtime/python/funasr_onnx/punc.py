"""CT-Transformer punctuation on onnxruntime: texts in, ``{"key", "text", "punc_array"}`` out."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np

from funasr.tasks.punc import PuncTask
from funasr.tokenizer import CharTokenizer
from funasr_onnx.session import ExportedModel


class CTTransformer(ExportedModel, PuncTask):
    """The exported CT-Transformer in funasr's ``PuncTask`` (windowing and text rules); only the network call differs."""

    task = "punc"

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        ExportedModel.__init__(self, model_dir, **kwargs)
        self.net = self.graph("model")
        PuncTask.__init__(self, self.net, None, CharTokenizer(**(self.cfg.get("tokenizer_conf") or {})), self.cfg)

    def predict(self, ids: np.ndarray) -> np.ndarray:
        """Punctuation class per token id (L,) -> (L,)."""
        (logits,) = self.net(inputs=ids.astype(np.int32)[None], text_lengths=np.array([len(ids)], dtype=np.int32))
        return logits[0].argmax(-1)
