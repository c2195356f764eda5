"""FSMN-VAD on onnxruntime: waveforms in, ``{"key", "value": [[beg_ms, end_ms], ...]}`` out, offline and streaming."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from funasr.audio import AudioItem
from funasr.errors import FunASRError
from funasr.frontend import WavFrontendOnline
from funasr.models.fsmn_vad.segmenter import VADOptions, VADStream
from funasr_onnx.session import ExportedModel

OFFLINE_CHUNK_MS = 60000  # FunASR's default chunk_size; shorter chunks mean streaming input
STREAMING_BELOW_MS = 15000
NET_BLOCK_FRAMES = 6000  # frames per graph call (60 s)


class FsmnVAD(ExportedModel):
    """The exported FSMN network plus funasr's segmenter; ``generate``-compatible ``__call__(items, **kwargs)``.

    ``FsmnVAD(model_dir, quantize=False, intra_op_num_threads=4, ...)``; options of
    ``model_conf`` (``max_single_segment_time``, ...) may be given as keyword arguments.
    """

    task = "vad"

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        super().__init__(model_dir, **kwargs)
        self.net = self.graph("model")
        self.frontend = WavFrontendOnline(**(self.cfg.get("frontend_conf") or {}))
        self.options = VADOptions.from_config(self.cfg)
        inputs = {i.name: i.shape for i in self.net.session.get_inputs()}
        self.cache_shapes = [tuple(inputs[n]) for n in self.net.input_names if n.startswith("in_cache")]

    def __call__(
        self,
        items: list[AudioItem],
        cache: Optional[dict] = None,
        is_final: Optional[bool] = None,
        chunk_size: int = OFFLINE_CHUNK_MS,
        is_streaming_input: Optional[bool] = None,
        **kwargs: Any,
    ) -> list[dict[str, Any]]:
        """Segments of each item; with ``cache`` (one item per call) the stream continues across calls."""
        if cache is not None and len(items) != 1:
            raise FunASRError(f"streaming VAD with cache= takes one input per call, got {len(items)}; call once per chunk")
        opts = self.options.for_call(**kwargs)
        chunk_ms = int(chunk_size)
        results = []
        for item in items:
            streaming = is_streaming_input if is_streaming_input is not None else chunk_ms < STREAMING_BELOW_MS
            final = is_final if is_final is not None else not streaming
            if isinstance(item.source, (str, Path)):  # a file or URL is a whole recording
                streaming, final = False, True
            state = cache if cache is not None else {}
            results.append({"key": item.key, "value": self.run(item.waveform, state, opts, chunk_ms, streaming, final)})
        return results

    def run(
        self, waveform: np.ndarray, state: dict, opts: VADOptions, chunk_ms: int, streaming: bool, is_final: bool
    ) -> list[list[int]]:
        """Feed ``waveform`` to the stream held in ``state`` in ``chunk_ms`` pieces; cleared after ``is_final``."""
        if not state:  # a new stream keeps the options of its first call
            state.update(frontend={}, fsmn=None, vad=VADStream(opts, streaming), prev_samples=np.zeros(0, np.float32))
        waveform = np.asarray(waveform, dtype=np.float32)
        audio = np.concatenate([state["prev_samples"], waveform]) if len(state["prev_samples"]) else waveform
        stride = int(chunk_ms * self.frontend.fs / 1000)
        n = len(audio) // stride + int(is_final)
        out: list[list[int]] = []
        for i in range(n):
            piece = audio[i * stride : (i + 1) * stride]
            last = is_final and i == n - 1
            state["vad"].begin_chunk(chunk_ms)
            feats = self.frontend.accept(piece, state["frontend"], last)
            out.extend(state["vad"].accept(piece, self.silence_prob(feats, state), last))
        state["prev_samples"] = audio[n * stride :].copy() if not is_final else np.zeros(0, np.float32)
        if is_final:
            state.clear()
        return out

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
