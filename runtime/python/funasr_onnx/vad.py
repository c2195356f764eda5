"""FSMN-VAD on onnxruntime: waveforms in, ``{"key", "value": [[beg_ms, end_ms], ...]}`` out, offline and streaming."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np

from funasr.frontend import WavFrontendOnline
from funasr.tasks.vad import VADTask
from funasr_onnx.session import ExportedModel

NET_BLOCK_FRAMES = 6000  # frames per graph call (60 s)


class FsmnVAD(ExportedModel, VADTask):
    """The exported FSMN network in funasr's ``VADTask`` (segmenter, chunking, streaming cache); only the network call differs.

    ``FsmnVAD(model_dir, quantize=False, intra_op_num_threads=4, ...)``; options of
    ``model_conf`` (``max_single_segment_time``, ...) may be given as keyword arguments.
    """

    task = "vad"

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        ExportedModel.__init__(self, model_dir, **kwargs)
        self.net = self.graph("model")
        VADTask.__init__(self, self.net, WavFrontendOnline(**(self.cfg.get("frontend_conf") or {})), None, self.cfg)
        inputs = {i.name: i.shape for i in self.net.session.get_inputs()}
        self.cache_shapes = [tuple(inputs[n]) for n in self.net.input_names if n.startswith("in_cache")]

    def silence_prob(self, feats: np.ndarray, state: dict) -> np.ndarray:
        """Silence posterior per frame (T,) for the next features (T, D), carrying the FSMN caches in ``state``."""
        if not len(feats):
            return np.zeros(0, dtype=np.float64)
        caches = state["fsmn"] or [np.zeros(s, dtype=np.float32) for s in self.cache_shapes]
        ids = list(self.options.sil_pdf_ids)
        p_sil = []
        for i in range(0, len(feats), NET_BLOCK_FRAMES):
            block = np.ascontiguousarray(feats[None, i : i + NET_BLOCK_FRAMES], dtype=np.float32)
            scores, *caches = self.net(speech=block, **{f"in_cache{j}": c for j, c in enumerate(caches)})
            p_sil.append(scores[0][:, ids].astype(np.float64).sum(-1))
        state["fsmn"] = caches
        return np.concatenate(p_sil)
