"""VAD task: waveforms in, FunASR's ``{"key", "value": [[beg_ms, end_ms], ...]}`` out (offline and streaming).

The network is a VAD engine (``funasr.engines.VADNet``, PyTorch or onnxruntime).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from funasr.audio import AudioItem
from funasr.engines import VADNet
from funasr.errors import OptionError
from funasr.frontend import WavFrontendOnline
from funasr.models.fsmn_vad.segmenter import VADOptions, VADStream
from funasr.options import VADCallOptions

STREAMING_BELOW_MS = 15000


class VADTask:
    """Runs FSMN-VAD over whole recordings (in 60 s chunks) or over a stream of chunks (``cache=``)."""

    kind: ClassVar[str] = "vad"

    def __init__(self, net: VADNet, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> None:
        self.net = net
        self.cfg = cfg
        # Chunked processing needs the online frontend; a config naming WavFrontend gets its online twin.
        self.frontend = frontend if hasattr(frontend, "accept") else WavFrontendOnline(**(cfg.get("frontend_conf") or {}))
        self.options = VADOptions.from_config(cfg)

    def __call__(self, items: list[AudioItem], options: VADCallOptions = VADCallOptions()) -> list[dict[str, Any]]:
        """Segments of each item; with ``options.cache`` (one item per call) the stream continues across calls."""
        if options.cache is not None and len(items) != 1:
            raise OptionError(f"streaming VAD with cache= takes one input per call, got {len(items)}; call once per chunk")
        opts = self.options.for_call(**options.segmenter_overrides())
        chunk_ms = int(options.chunk_size)
        results = []
        for item in items:
            streaming = options.is_streaming_input if options.is_streaming_input is not None else chunk_ms < STREAMING_BELOW_MS
            final = options.is_final if options.is_final is not None else not streaming
            if isinstance(item.source, (str, Path)):  # a file or URL is a whole recording (as in the reference)
                streaming, final = False, True
            state = options.cache if options.cache is not None else {}
            value = self.run(item.waveform, state, opts, chunk_ms, streaming, final)
            results.append({"key": item.key, "value": value})
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
        """Silence posterior per frame (T,) for the next features (T, D), carrying the FSMN cache in ``state``."""
        p_sil, state["fsmn"] = self.net.silence_prob(feats, state["fsmn"], self.options.sil_pdf_ids)
        return p_sil
