"""Paraformer family on onnxruntime: waveforms in, funasr's ``{"key", "text"[, "timestamp"]}`` out.

One class serves the four exported families; the graph says which it is: ``us_alphas``
among the outputs gives timestamps (BiCif, SeACo), ``bias_embed`` among the inputs takes
hotwords (SeACo, Contextual; their ``model_eb`` graph encodes the hotword lists).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from funasr.audio import AudioItem
from funasr.frontend import WavFrontend
from funasr.postprocess import Recognition, integrate_and_fire
from funasr.tasks.asr import ASRTask
from funasr.tokenizer import CharTokenizer
from funasr_onnx.session import ExportedModel

log = logging.getLogger(__name__)

UPSAMPLE_RATE = 3  # timestamp head: 3 weights per encoder frame (20 ms steps)


class Paraformer(ExportedModel, ASRTask):
    """Paraformer, BiCifParaformer, SeacoParaformer or ContextualParaformer, from an exported folder.

    funasr's ``ASRTask`` (batching, hotword lists and cache, text and timestamps) around the
    exported graphs: only the network calls differ. ``Paraformer(model_dir, quantize=False,
    intra_op_num_threads=4, ...)``; ``__call__(items, batch_size=..., hotword=...)`` takes the
    same arguments as funasr's ``generate``.
    """

    task = "asr"

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        ExportedModel.__init__(self, model_dir, **kwargs)
        self.net = self.graph("model")
        frontend = WavFrontend(**(self.cfg.get("frontend_conf") or {}))
        ASRTask.__init__(self, self.net, frontend, CharTokenizer(**(self.cfg.get("tokenizer_conf") or {})), self.cfg)
        conf = self.cfg.get("model_conf") or {}
        self.drop = {conf.get("blank_id", 0), conf.get("sos", 1), conf.get("eos", 2)}
        self.embedder = self.graph("model_eb") if "bias_embed" in self.net.input_names else None
        shapes = {i.name: i.shape for i in self.net.session.get_inputs()}
        self.bias_dim = shapes["bias_embed"][-1] if self.embedder is not None else None
        # Contextual Paraformer always biases (the sentinel alone by default); SeACo only with hotwords.
        self.always_bias = self.cfg.get("model") == "ContextualParaformer"

    @property
    def always_timestamps(self) -> bool:
        """Whether the graph has the timestamp head (BiCif, SeACo)."""
        return "us_alphas" in self.net.output_names

    @property
    def takes_hotwords(self) -> bool:
        """Whether the graph takes encoded hotwords (SeACo, Contextual)."""
        return self.embedder is not None

    def __call__(self, items: list[AudioItem], **kwargs: Any) -> list[dict]:
        """Recognise ``items`` (see ``ASRTask``); warns about options the exported graph cannot honour."""
        if (kwargs.get("pred_timestamp") or kwargs.get("output_timestamp")) and not self.always_timestamps:
            log.warning("this exported graph has no timestamp outputs; results come without timestamps")
        if float(kwargs.get("clas_scale", 1.0)) != 1.0:
            log.warning("clas_scale is fixed at 1.0 in the exported graph; ignoring clas_scale=%s", kwargs["clas_scale"])
        return ASRTask.__call__(self, items, **kwargs)

    def decode(self, feats: np.ndarray, lens: np.ndarray, bias: Optional[np.ndarray], timestamps: bool,
               options: dict[str, Any]) -> Recognition:
        """The graph: padded features and lengths -> greedy tokens (and timestamp weights for BiCif/SeACo)."""
        feed = {"speech": np.ascontiguousarray(feats, dtype=np.float32), "speech_lengths": lens.astype(np.int32)}
        if self.embedder is not None:
            rows = bias if bias is not None else np.zeros((1, self.bias_dim), dtype=np.float32)  # all zero: no hotwords
            feed["bias_embed"] = np.ascontiguousarray(np.broadcast_to(rows, (len(lens),) + rows.shape))
        outputs = self.net(**feed)
        logits, token_num = outputs[0], outputs[1]
        ids = [[t for t in logits[j, : token_num[j]].argmax(-1).tolist() if t not in self.drop] for j in range(len(lens))]
        if not self.always_timestamps:
            return Recognition(ids)
        alphas = [outputs[2][j, : UPSAMPLE_RATE * int(n)] for j, n in enumerate(lens)]
        peaks = [integrate_and_fire(a, 1.0 - 1e-4, 1.0 - 1e-4) for a in alphas]
        return Recognition(ids, alphas, peaks, UPSAMPLE_RATE)

    def encode_hotwords(self, hotwords: list[list[int]]) -> np.ndarray:
        """Hotword id lists -> (H, D): the bias LSTM's output at each hotword's last token."""
        lengths = [len(h) for h in hotwords]
        ids = np.zeros((len(hotwords), max(lengths)), dtype=np.int32)
        for i, h in enumerate(hotwords):
            ids[i, : len(h)] = h
        (hw_embed,) = self.embedder(hotword=ids)  # (L, H, D)
        return np.ascontiguousarray(hw_embed[np.array(lengths) - 1, np.arange(len(hotwords))])
