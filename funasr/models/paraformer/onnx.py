"""The Paraformer family on onnxruntime: an ``ASRNet`` (funasr.engines) around the exported graphs (numpy only).

``model`` takes padded features and gives log-probabilities, token counts and, for the
timestamp models (BiCif, SeACo), the upsampled weights ``us_alphas``; the hotword models
(SeACo, Contextual) take ``bias_embed`` rows, which their ``model_eb`` graph encodes.
"""
from __future__ import annotations

import logging
from typing import Any, Callable, Optional

import numpy as np

from funasr.engines import Recognition
from funasr.lm import LMFusion
from funasr.models.paraformer.cif import upsampled_stamp_inputs
from funasr.models.paraformer.decoding import ParaformerNet
from funasr.models.paraformer.family import BIAS_EMBED, EMBED_GRAPH, HOTWORD, SPEECH, SPEECH_LENGTHS, US_ALPHAS

log = logging.getLogger(__name__)


class ParaformerOnnx(ParaformerNet):
    """``load(name)`` loads an exported graph: a callable taking inputs by name, with ``input_names``,
    ``output_names`` and ``input_shapes``."""

    def __init__(self, load: Callable[[str], Any], cfg: dict[str, Any]) -> None:
        super().__init__(cfg)
        self.graph = load("model")
        self.embedder = load(EMBED_GRAPH) if BIAS_EMBED in self.graph.input_names else None
        self.bias_dim = self.graph.input_shapes[BIAS_EMBED][-1] if self.embedder is not None else None
        self._warned: set[str] = set()

    @property
    def always_timestamps(self) -> bool:
        """Whether the graph has the timestamp head (BiCif, SeACo)."""
        return US_ALPHAS in self.graph.output_names

    @property
    def timestamps_on_request(self) -> bool:
        """A graph without the timestamp head has no CIF outputs to compute timestamps from."""
        return self.always_timestamps

    @property
    def takes_hotwords(self) -> bool:
        """Whether the graph takes encoded hotwords (SeACo, Contextual)."""
        return self.embedder is not None

    def warn_once(self, message: str) -> None:
        """Log ``message`` as a warning the first time only."""
        if message not in self._warned:
            self._warned.add(message)
            log.warning(message)

    def recognize(
        self, feats: np.ndarray, lens: np.ndarray, bias: Optional[np.ndarray] = None, timestamps: bool = False,
        clas_scale: float = 1.0, lm: Optional[LMFusion] = None, **_: Any,
    ) -> Recognition:
        """Features (B, T, D) and lengths (B,) -> tokens (greedy, or with ``lm``) and the timestamp head's inputs where the graph has it."""
        if timestamps and not self.always_timestamps:
            self.warn_once("this exported graph has no timestamp outputs; results come without timestamps")
        if float(clas_scale) != 1.0:
            self.warn_once(f"clas_scale is fixed at 1.0 in the exported graph; ignoring clas_scale={clas_scale}")
        feed = {SPEECH: np.ascontiguousarray(feats, dtype=np.float32), SPEECH_LENGTHS: lens.astype(np.int32)}
        if self.embedder is not None:
            rows = bias if bias is not None else np.zeros((1, self.bias_dim), dtype=np.float32)  # all zero: no hotwords
            feed[BIAS_EMBED] = np.ascontiguousarray(np.broadcast_to(rows, (len(lens),) + rows.shape))
        outputs = self.graph(**feed)
        out = Recognition(self.choose(outputs[0], outputs[1], lm))
        if self.always_timestamps:
            us_alphas = outputs[2]
            rate = us_alphas.shape[1] // feats.shape[1]  # timestamp steps per encoder frame
            out.stamp_weights, out.stamp_fires = upsampled_stamp_inputs(us_alphas, lens, rate)
            out.upsample_rate = rate
        return out

    def encode_hotwords(self, ids: list[list[int]]) -> np.ndarray:
        """Hotword id lists -> (H, D): the bias LSTM's output at each hotword's last token."""
        lengths = [len(h) for h in ids]
        padded = np.zeros((len(ids), max(lengths)), dtype=np.int32)
        for i, h in enumerate(ids):
            padded[i, : len(h)] = h
        (hw_embed,) = self.embedder(**{HOTWORD: padded})  # (L, H, D)
        return np.ascontiguousarray(hw_embed[np.array(lengths) - 1, np.arange(len(ids))])
