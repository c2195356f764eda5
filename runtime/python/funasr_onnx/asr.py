"""Paraformer family on onnxruntime: waveforms in, funasr's ``{"key", "text"[, "timestamp"]}`` out.

funasr's ``ASRTask`` around the family's onnxruntime engine
(``funasr.models.paraformer.onnx.ParaformerOnnx``) over the exported graphs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from funasr.tasks.asr import ASRTask
from funasr_onnx.session import exported_parts


class Paraformer(ASRTask):
    """Paraformer, BiCifParaformer, SeacoParaformer or ContextualParaformer, from an exported folder.

    ``Paraformer(model_dir, quantize=False, intra_op_num_threads=4, ...)``; ``__call__(items,
    ASROptions(...))`` takes the options of funasr's ``ASRTask``.
    """

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        super().__init__(*exported_parts(model_dir, "asr", **kwargs))
