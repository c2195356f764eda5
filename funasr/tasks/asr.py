"""ASRTask: waveforms -> frontend -> ASR engine (``funasr.engines.ASRNet``) -> FunASR result dicts.

One dict per item, in FunASR's format: ``{"key", "text"}``, plus ``"timestamp"``
(``[[start_ms, end_ms], ...]``, one per text unit) for models that always give timestamps
(BiCif, SeACo) or when ``pred_timestamp`` / ``output_timestamp`` is set.

The task never touches torch or onnxruntime: the engine (PyTorch or onnxruntime) does.
"""
from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from typing import Any, ClassVar

import numpy as np

from funasr.audio import AudioItem
from funasr.hotword import check_hotword, hotword_ids, read_hotwords
from funasr.options import ASROptions
from funasr.engines import ASRNet, Recognition
from funasr.models.paraformer.cif import ts_prediction_lfr6_standard
from funasr.models.paraformer.decoding import special_ids
from funasr.postprocess import sentence_postprocess

log = logging.getLogger(__name__)

HOTWORD_CACHE_SIZE = 8


class ASRTask:
    """Runs an ASR model over a batch of audio items."""

    kind: ClassVar[str] = "asr"

    def __init__(self, net: ASRNet, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> None:
        self.net = net
        self.frontend = frontend
        self.tokenizer = tokenizer
        self.cfg = cfg
        self._hotwords: OrderedDict[tuple, Any] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def always_timestamps(self) -> bool:
        """Whether every result carries timestamps (BiCif, SeACo)."""
        return bool(self.net.always_timestamps)

    @property
    def takes_hotwords(self) -> bool:
        """Whether the model can be biased with hotwords (SeACo, Contextual)."""
        return bool(self.net.takes_hotwords)

    @property
    def always_bias(self) -> bool:
        """Whether the model biases with the sentinel alone when given no hotwords (Contextual)."""
        return bool(self.net.always_bias)

    def gives_timestamps(self, options: ASROptions) -> bool:
        """Whether results carry ``timestamp`` under ``options``."""
        return bool(options.timestamps and self.net.timestamps_on_request) or self.always_timestamps

    def __call__(self, items: list[AudioItem], options: ASROptions = ASROptions()) -> list[dict]:
        """Recognise ``items`` as one batch (the caller sizes batches); results in item order."""
        if not items:
            return []
        return self.recognize(items, self.hotword_bias(options.hotword), options)

    def recognize(self, items: list[AudioItem], bias: Any, options: ASROptions) -> list[dict]:
        """One batch: features, model, text (and timestamps). Items with no frames give empty text."""
        with_ts = self.gives_timestamps(options)
        results = [self.empty(item.key, with_ts) for item in items]
        per_item = [self.frontend.extract(item.waveform) for item in items]
        live = [i for i, f in enumerate(per_item) if len(f)]
        if not live:
            return results
        lens = np.array([len(per_item[i]) for i in live], dtype=np.int64)
        feats = np.zeros((len(live), int(lens.max()), per_item[live[0]].shape[1]), dtype=np.float32)
        for j, i in enumerate(live):
            feats[j, : lens[j]] = per_item[i]
        rec = self.decode(feats, lens, bias, options.timestamps, {"clas_scale": options.clas_scale})
        for j, i in enumerate(live):
            results[i] = self.result(items[i].key, rec, j, with_ts)
        return results

    def decode(self, feats: np.ndarray, lens: np.ndarray, bias: Any, timestamps: bool, options: dict[str, Any]) -> Recognition:
        """The engine: padded features (B, T, D) and lengths (B,) -> greedy tokens (and timestamp inputs)."""
        return self.net.recognize(feats, lens, bias=bias, timestamps=timestamps, **options)

    @staticmethod
    def empty(key: str, with_ts: bool) -> dict:
        """The result of an utterance that decodes to no tokens."""
        return {"key": key, "text": "", "timestamp": []} if with_ts else {"key": key, "text": ""}

    def result(self, key: str, rec: Recognition, j: int, with_ts: bool) -> dict:
        """Result dict of batch item ``j``."""
        tokens = self.tokenizer.ids2tokens(rec.token_ids[j])
        if not with_ts or rec.stamp_weights is None:
            return {"key": key, "text": sentence_postprocess(tokens)[0]}
        stamps = ts_prediction_lfr6_standard(rec.stamp_weights[j], rec.stamp_fires[j], tokens, upsample_rate=rec.upsample_rate)
        text, stamps, _ = sentence_postprocess(tokens, stamps)
        return {"key": key, "text": text, "timestamp": stamps}

    def hotword_bias(self, hotword: Any) -> Any:
        """Encoded hotwords for the model (None: no biasing), cached per hotword argument."""
        if not self.takes_hotwords:
            if hotword is not None:
                log.debug("%s takes no hotwords; ignoring hotword=%r", self.cfg.get("model"), hotword)
            return None
        if hotword is None and not self.always_bias:
            return None
        check_hotword(hotword)
        key = _cache_key(hotword)
        with self._lock:
            if key in self._hotwords:
                self._hotwords.move_to_end(key)
                return self._hotwords[key]
        words = read_hotwords(hotword)
        _, sos, _ = special_ids(self.cfg)
        bias = None
        if words:
            bias = self.net.encode_hotwords(hotword_ids(words, self.tokenizer, sos=sos))
            log.info("hotwords: %s", words)
        elif self.always_bias:
            bias = self.net.encode_hotwords([[sos]])
        with self._lock:
            self._hotwords[key] = bias
            if len(self._hotwords) > HOTWORD_CACHE_SIZE:
                self._hotwords.popitem(last=False)
        return bias


def _cache_key(hotword: Any) -> tuple:
    """Cache key: the argument itself, plus the file's modification time for a local file."""
    if isinstance(hotword, str):
        mtime = os.path.getmtime(hotword) if hotword.endswith(".txt") and os.path.isfile(hotword) else None
        return (hotword, mtime)
    return ("list", None if hotword is None else tuple(hotword))
