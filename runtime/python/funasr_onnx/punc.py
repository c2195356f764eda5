"""CT-Transformer punctuation on onnxruntime: texts in, ``{"key", "text", "punc_array"}`` out (offline and realtime)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from funasr.tasks.punc import PuncTask, RealtimePuncTask
from funasr_onnx.session import exported_parts


class CTTransformer(PuncTask):
    """funasr's ``PuncTask`` (windowing and text rules) around the exported CT-Transformer."""

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        super().__init__(*exported_parts(model_dir, "punc", **kwargs))


class CTTransformerRealtime(RealtimePuncTask):
    """funasr's ``RealtimePuncTask`` (text streams: ``create_stream`` / ``decode_streams``) around the exported CTTransformerStreaming."""

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        super().__init__(*exported_parts(model_dir, "punc", **kwargs))
