"""FSMN-VAD on onnxruntime: waveforms in, ``{"key", "value": [[beg_ms, end_ms], ...]}`` out, offline and streaming."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

from funasr.tasks.vad import VADTask
from funasr_onnx.session import exported_parts


class FsmnVAD(VADTask):
    """funasr's ``VADTask`` (segmenter, chunking, streaming cache) around the exported FSMN network.

    ``FsmnVAD(model_dir, quantize=False, intra_op_num_threads=4, ...)``; options of
    ``model_conf`` (``max_single_segment_time``, ...) may be given as keyword arguments.
    """

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        super().__init__(*exported_parts(model_dir, "vad", **kwargs))
