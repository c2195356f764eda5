"""ASRTask: waveforms -> frontend -> Paraformer-family model -> FunASR result dicts.

One dict per item, in FunASR's format: ``{"key", "text"}``, plus ``"timestamp"``
(``[[start_ms, end_ms], ...]``, one per text unit) for models that always give timestamps
(BiCif, SeACo) or when ``pred_timestamp`` / ``output_timestamp`` is set.
"""
from __future__ import annotations

import logging
import os
from collections import OrderedDict
from typing import Any, Optional

import numpy as np
import torch

from funasr.audio import AudioItem
from funasr.hotword import hotword_ids, read_hotwords
from funasr.models.paraformer.model import Recognition
from funasr.postprocess import sentence_postprocess, ts_prediction_lfr6_standard

log = logging.getLogger(__name__)

HOTWORD_CACHE_SIZE = 8


class ASRTask:
    """Runs an ASR model over audio items in batches of ``batch_size`` (sorted by length, order kept)."""

    def __init__(self, model: torch.nn.Module, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> None:
        self.model = model
        model.keep_float32()
        self.frontend = frontend
        self.tokenizer = tokenizer
        self.cfg = cfg
        self._hotwords: OrderedDict[tuple, Optional[torch.Tensor]] = OrderedDict()

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return next(self.model.parameters()).device

    def __call__(self, items: list[AudioItem], **kwargs: Any) -> list[dict]:
        """Recognise ``items``; kwargs: ``batch_size``, ``hotword``, ``pred_timestamp``/``output_timestamp``, ``clas_scale``.

        Without ``batch_size`` the items (already batched by the caller) run as one batch.
        """
        batch_size = max(1, int(kwargs.get("batch_size") or len(items) or 1))
        timestamps = bool(kwargs.get("pred_timestamp") or kwargs.get("output_timestamp"))
        bias = self.hotword_bias(kwargs.get("hotword"))
        options = {"clas_scale": float(kwargs.get("clas_scale", 1.0))}
        results: list[Optional[dict]] = [None] * len(items)
        order = sorted(range(len(items)), key=lambda i: len(items[i].waveform))
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            for i, result in zip(chunk, self.recognize([items[i] for i in chunk], bias, timestamps, options)):
                results[i] = result
        return results  # type: ignore[return-value]

    def recognize(
        self, items: list[AudioItem], bias: Optional[torch.Tensor], timestamps: bool, options: dict[str, Any]
    ) -> list[dict]:
        """One batch: features, model, text (and timestamps). Items with no frames give empty text."""
        with_ts = timestamps or self.model.always_timestamps
        results = [self.empty(item.key, with_ts) for item in items]
        per_item = [self.features(item.waveform) for item in items]
        live = [i for i, f in enumerate(per_item) if len(f)]
        if not live:
            return results
        lens = np.array([len(per_item[i]) for i in live], dtype=np.int64)
        feats = np.zeros((len(live), int(lens.max()), per_item[live[0]].shape[1]), dtype=np.float32)
        for j, i in enumerate(live):
            feats[j, : lens[j]] = per_item[i]
        with torch.inference_mode():
            rec = self.model.recognize(
                torch.from_numpy(feats).to(self.device),
                torch.from_numpy(lens).to(self.device),
                bias=bias,
                timestamps=timestamps,
                **options,
            )
        for j, i in enumerate(live):
            results[i] = self.result(items[i].key, rec, j, with_ts)
        return results

    def features(self, waveform: np.ndarray) -> np.ndarray:
        """(T, D) features of one waveform; audio shorter than one 25 ms frame may give none."""
        return self.frontend.extract(waveform)

    @staticmethod
    def empty(key: str, with_ts: bool) -> dict:
        """The result of an utterance that decodes to no tokens."""
        return {"key": key, "text": "", "timestamp": []} if with_ts else {"key": key, "text": ""}

    def result(self, key: str, rec: Recognition, j: int, with_ts: bool) -> dict:
        """Result dict of batch item ``j``."""
        tokens = self.tokenizer.ids2tokens(rec.token_ids[j])
        if not with_ts or rec.ts_alphas is None:
            return {"key": key, "text": sentence_postprocess(tokens)[0]}
        stamps = ts_prediction_lfr6_standard(rec.ts_alphas[j], rec.ts_peaks[j], tokens, upsample_rate=rec.upsample_rate)
        text, stamps, _ = sentence_postprocess(tokens, stamps)
        return {"key": key, "text": text, "timestamp": stamps}

    def hotword_bias(self, hotword: Any) -> Optional[torch.Tensor]:
        """Encoded hotwords for the model (None: no biasing), cached per hotword argument."""
        if hotword is None or not hasattr(self.model, "encode_hotwords"):
            if hotword is not None:
                log.debug("%s takes no hotwords; ignoring hotword=%r", type(self.model).__name__, hotword)
            return None
        key = self._cache_key(hotword)
        if key in self._hotwords:
            self._hotwords.move_to_end(key)
            return self._hotwords[key]
        words = read_hotwords(hotword)
        bias = None
        if words:
            ids = hotword_ids(words, self.tokenizer, sos=self.model.sos)
            with torch.inference_mode():
                bias = self.model.encode_hotwords(ids)
            log.info("hotwords: %s", words)
        self._hotwords[key] = bias
        if len(self._hotwords) > HOTWORD_CACHE_SIZE:
            self._hotwords.popitem(last=False)
        return bias

    @staticmethod
    def _cache_key(hotword: Any) -> tuple:
        """Cache key: the argument itself, plus the file's modification time for a local file."""
        if isinstance(hotword, str):
            mtime = os.path.getmtime(hotword) if hotword.endswith(".txt") and os.path.isfile(hotword) else None
            return (hotword, mtime)
        return ("list", tuple(hotword))

