"""Paraformer family on onnxruntime: waveforms in, funasr's ``{"key", "text"[, "timestamp"]}`` out.

One class serves the four exported families; the graph says which it is: ``us_alphas``
among the outputs gives timestamps (BiCif, SeACo), ``bias_embed`` among the inputs takes
hotwords (SeACo, Contextual; their ``model_eb`` graph encodes the hotword lists).
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np

from funasr.audio import AudioItem
from funasr.frontend import WavFrontend
from funasr.hotword import hotword_ids, read_hotwords
from funasr.postprocess import integrate_and_fire, sentence_postprocess, ts_prediction_lfr6_standard
from funasr.tokenizer import CharTokenizer
from funasr_onnx.session import ExportedModel

log = logging.getLogger(__name__)

HOTWORD_CACHE_SIZE = 8
UPSAMPLE_RATE = 3  # timestamp head: 3 weights per encoder frame (20 ms steps)


class Paraformer(ExportedModel):
    """Paraformer, BiCifParaformer, SeacoParaformer or ContextualParaformer, from an exported folder.

    ``Paraformer(model_dir, quantize=False, intra_op_num_threads=4, ...)``; ``__call__(items,
    batch_size=..., hotword=...)`` takes the same arguments as funasr's ``generate``.
    """

    task = "asr"

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        super().__init__(model_dir, **kwargs)
        self.net = self.graph("model")
        self.frontend = WavFrontend(**(self.cfg.get("frontend_conf") or {}))
        self.tokenizer = CharTokenizer(**(self.cfg.get("tokenizer_conf") or {}))
        conf = self.cfg.get("model_conf") or {}
        self.blank_id, self.sos, self.eos = conf.get("blank_id", 0), conf.get("sos", 1), conf.get("eos", 2)
        self.always_timestamps = "us_alphas" in self.net.output_names
        self.embedder = self.graph("model_eb") if "bias_embed" in self.net.input_names else None
        shapes = {i.name: i.shape for i in self.net.session.get_inputs()}
        self.bias_dim = shapes["bias_embed"][-1] if self.embedder is not None else None
        # Contextual Paraformer always biases (the sentinel alone by default); SeACo only with hotwords.
        self.always_bias = self.cfg.get("model") == "ContextualParaformer"
        self._hotwords: OrderedDict[tuple, Optional[np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def __call__(self, items: list[AudioItem], **kwargs: Any) -> list[dict]:
        """Recognise ``items``; kwargs: ``batch_size``, ``hotword``, ``pred_timestamp``/``output_timestamp``.

        Without ``batch_size`` the items (already batched by the caller) run as one batch.
        """
        batch_size = max(1, int(kwargs.get("batch_size") or len(items) or 1))
        if (kwargs.get("pred_timestamp") or kwargs.get("output_timestamp")) and not self.always_timestamps:
            log.warning("this exported graph has no timestamp outputs; results come without timestamps")
        if float(kwargs.get("clas_scale", 1.0)) != 1.0:
            log.warning("clas_scale is fixed at 1.0 in the exported graph; ignoring clas_scale=%s", kwargs["clas_scale"])
        bias = self.hotword_bias(kwargs.get("hotword"))
        results: list[Optional[dict]] = [None] * len(items)
        order = sorted(range(len(items)), key=lambda i: len(items[i].waveform))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for i, result in zip(chunk, self.recognize([items[i] for i in chunk], bias)):
                results[i] = result
        return results  # type: ignore[return-value]

    def recognize(self, items: list[AudioItem], bias: Optional[np.ndarray]) -> list[dict]:
        """One batch: features, graph, text (and timestamps). Items with no frames give empty text."""
        feats, lens = self.frontend([item.waveform for item in items])
        results = [self.empty(item.key) for item in items]
        live = [i for i, n in enumerate(lens) if n > 0]
        if not live:
            return results
        feats, lens = feats[live, : int(lens[live].max())], lens[live]
        feed = {"speech": np.ascontiguousarray(feats, dtype=np.float32), "speech_lengths": lens.astype(np.int32)}
        if self.embedder is not None:
            rows = bias if bias is not None else np.zeros((1, self.bias_dim), dtype=np.float32)  # all zero: no hotwords
            feed["bias_embed"] = np.ascontiguousarray(np.broadcast_to(rows, (len(live),) + rows.shape))
        outputs = self.net(**feed)
        logits, token_num = outputs[0], outputs[1]
        for j, i in enumerate(live):
            ids = [t for t in logits[j, : token_num[j]].argmax(-1).tolist() if t not in (self.blank_id, self.sos, self.eos)]
            tokens = self.tokenizer.ids2tokens(ids)
            if not self.always_timestamps:
                results[i] = {"key": items[i].key, "text": sentence_postprocess(tokens)[0]}
                continue
            us_alphas = outputs[2][j, : UPSAMPLE_RATE * int(lens[j])]
            us_peaks = integrate_and_fire(us_alphas, 1.0 - 1e-4, 1.0 - 1e-4)
            stamps = ts_prediction_lfr6_standard(us_alphas, us_peaks, tokens, upsample_rate=UPSAMPLE_RATE)
            text, stamps, _ = sentence_postprocess(tokens, stamps)
            results[i] = {"key": items[i].key, "text": text, "timestamp": stamps}
        return results

    def empty(self, key: str) -> dict:
        """The result of an utterance that decodes to no tokens."""
        return {"key": key, "text": "", "timestamp": []} if self.always_timestamps else {"key": key, "text": ""}

    def hotword_bias(self, hotword: Any) -> Optional[np.ndarray]:
        """Encoded hotwords (H, D) (None: no biasing), cached per hotword argument."""
        if self.embedder is None:
            if hotword is not None:
                log.debug("this model takes no hotwords; ignoring hotword=%r", hotword)
            return None
        key = _cache_key(hotword)
        with self._lock:
            if key in self._hotwords:
                self._hotwords.move_to_end(key)
                return self._hotwords[key]
        words = read_hotwords(hotword)
        bias = None
        if words:
            bias = self.encode_hotwords(hotword_ids(words, self.tokenizer, sos=self.sos))
            log.info("hotwords: %s", words)
        elif self.always_bias:
            bias = self.encode_hotwords([[self.sos]])
        with self._lock:
            self._hotwords[key] = bias
            if len(self._hotwords) > HOTWORD_CACHE_SIZE:
                self._hotwords.popitem(last=False)
        return bias

    def encode_hotwords(self, hotwords: list[list[int]]) -> np.ndarray:
        """Hotword id lists -> (H, D): the bias LSTM's output at each hotword's last token."""
        lengths = [len(h) for h in hotwords]
        ids = np.zeros((len(hotwords), max(lengths)), dtype=np.int32)
        for i, h in enumerate(hotwords):
            ids[i, : len(h)] = h
        (hw_embed,) = self.embedder(hotword=ids)  # (L, H, D)
        return np.ascontiguousarray(hw_embed[np.array(lengths) - 1, np.arange(len(hotwords))])


def _cache_key(hotword: Any) -> tuple:
    """Cache key: the argument itself, plus the file's modification time for a local file."""
    if isinstance(hotword, str):
        mtime = os.path.getmtime(hotword) if hotword.endswith(".txt") and os.path.isfile(hotword) else None
        return (hotword, mtime)
    return ("list", None if hotword is None else tuple(hotword))
