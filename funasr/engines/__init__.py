"""The protocol between tasks and networks (numpy only, no torch).

A task (``funasr.tasks``) turns items into FunASR result dicts; the network it runs is an
*engine*: an object of one of the protocols below, numpy in and numpy out. Each model family
provides a PyTorch engine (``funasr/models/<family>/engine.py``, around its ``nn.Module``)
and an onnxruntime engine (``funasr/models/<family>/onnx.py``, around the graphs that
``funasr_onnx`` loads), so a task never touches torch or onnxruntime.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Protocol, Sequence

import numpy as np

from funasr.errors import OptionError

ENGINES = ("torch", "onnx")  # what the server and batch transcription take as ``engine``


def check_engine(engine: str, local: bool = True) -> None:
    """Refuse an unknown ``engine``, or (``local``: run in this environment) one whose package is not installed."""
    if engine not in ENGINES:
        raise OptionError(f"engine={engine!r} is not allowed: pass one of {', '.join(ENGINES)}")
    if local and engine == "onnx":
        try:
            import funasr_onnx  # noqa: F401
        except ImportError as e:
            raise OptionError("engine='onnx' needs the funasr-onnx package (runtime/python in funasr's source): "
                              f"pip install ./runtime/python ({e})") from e


@dataclass
class Recognition:
    """An ASR engine's greedy decoding of a batch: token ids per item and, when asked, timestamp inputs.

    ``stamp_weights`` / ``stamp_fires`` are what the timestamp routine
    (``funasr.models.paraformer.cif.ts_prediction_lfr6_standard``) receives as its ``alphas`` and
    ``peaks``: the weights it re-integrates when the fires do not match the token count, and
    the integrate values whose steps ``>= 1`` are fires. Which CIF outputs fill them depends on
    the model (see ``funasr.models.paraformer.cif``).
    """

    token_ids: list[list[int]]  # per item, blank/sos/eos removed
    stamp_weights: Optional[list[np.ndarray]] = None  # per item, 1-D float32
    stamp_fires: Optional[list[np.ndarray]] = None  # per item, 1-D float32, as long as stamp_weights
    upsample_rate: int = 1  # timestamp steps per encoder frame
    token_stamps: Optional[list[list[list[int]]]] = None  # per item [start_ms, end_ms] per token (CTC models)


class ASRNet(Protocol):
    """A speech recognition network: padded features in, greedy token ids (and timestamp inputs) out."""

    @property
    def always_timestamps(self) -> bool:
        """Whether every recognition carries timestamp inputs (models with a timestamp head)."""

    @property
    def timestamps_on_request(self) -> bool:
        """Whether ``recognize(..., timestamps=True)`` gives timestamp inputs (else only ``always_timestamps`` does)."""

    @property
    def takes_hotwords(self) -> bool:
        """Whether ``encode_hotwords`` exists and ``recognize`` honours ``bias``."""

    @property
    def always_bias(self) -> bool:
        """Whether the network biases with the sentinel alone when given no hotwords."""

    def recognize(
        self, feats: np.ndarray, lens: np.ndarray, bias: Any = None, timestamps: bool = False, **options: Any
    ) -> Recognition:
        """Features (B, T, D) float32 and lengths (B,) int64 -> greedy tokens (and timestamp inputs when asked)."""

    def encode_hotwords(self, ids: list[list[int]]) -> Any:
        """Hotword token id lists (sentinel last) -> the ``bias`` that ``recognize`` takes."""


class PuncNet(Protocol):
    """A punctuation network: one class per token."""

    def predict(self, ids: np.ndarray) -> np.ndarray:
        """Token ids (L,) int64 -> punctuation class per token (L,)."""


class RealtimePuncNet(Protocol):
    """A realtime punctuation network: windows whose first ``vad_index`` words were carried from an earlier call."""

    def predict_batch(self, windows: list[np.ndarray], vad_indexes: list[int]) -> list[np.ndarray]:
        """Token id windows (L_i,) int64 and their VAD indexes -> punctuation class per token (L_i,) of each, in one batch."""


class VADNet(Protocol):
    """A streaming VAD network: per-frame silence posteriors, the FSMN cache carried explicitly."""

    def silence_probs(self, feats: Sequence[np.ndarray], caches: Sequence[Any],
                      sil_pdf_ids: Sequence[int]) -> tuple[list[np.ndarray], list[Any]]:
        """Per stream, features (T, D) float32 (the same T for all) and the cache after its previous frames (None at the
        start), in one batch -> (per stream, the silence posterior per frame (T,) float64: the sum over ``sil_pdf_ids``;
        per stream, the cache after these frames)."""
