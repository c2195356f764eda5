"""The models a server runs, chosen like ``AutoModel`` (names, hub ids or folders; PyTorch or onnxruntime), loaded once."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional

from funasr.engines import check_engine
from funasr.errors import ConfigError, OptionError
from funasr.runner import Runner

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """Which models to load and how; a model given as ``None`` is not loaded."""

    model: str = "paraformer-zh"  # the offline (second-pass) ASR model
    online_model: Optional[str] = "paraformer-zh-streaming"
    vad_model: Optional[str] = "fsmn-vad"
    punc_model: Optional[str] = "ct-punc"
    realtime_punc_model: Optional[str] = None  # per-connection punctuation of 2pass results (else punc_model)
    engine: str = "torch"
    device: str = "cpu"
    quantize: bool = False  # onnx: the int8 graphs
    ncpu: int = 1  # threads per model run: more only pays for long offline passes on an idle machine
    hub: str = "hf"
    max_end_silence_ms: Optional[int] = None  # 2pass endpointing: fixed VAD end silence (None: the model's schedule)

    def __post_init__(self) -> None:
        check_engine(self.engine)
        if self.max_end_silence_ms is not None and (isinstance(self.max_end_silence_ms, bool) or not isinstance(
                self.max_end_silence_ms, int) or self.max_end_silence_ms <= 0):
            raise OptionError(f"max_end_silence_ms={self.max_end_silence_ms!r} is not allowed: pass a positive number of "
                              "milliseconds (e.g. 800); leave it unset for the VAD model's own schedule")


def load_task(name: str, choice: ModelChoice) -> Any:
    """One model's task with the chosen engine."""
    if choice.engine == "onnx":
        from funasr_onnx.auto_model import load_model

        return load_model(name, choice.hub, quantize=choice.quantize, intra_op_num_threads=choice.ncpu, device=choice.device)
    import torch

    from funasr.auto_model import build_task

    torch.set_num_threads(choice.ncpu)
    return build_task(name, hub=choice.hub, device=choice.device)


class Models:
    """The tasks shared by every connection: the offline pipeline (VAD -> ASR -> punctuation) and the streaming parts."""

    def __init__(self, choice: ModelChoice, offline: Runner, online: Any = None, realtime_punc: Any = None) -> None:
        self.choice = choice
        self.offline = offline
        self.asr, self.vad, self.punc = offline.task, offline.vad_task, offline.punc_task
        self.online = online
        self.realtime_punc = realtime_punc
        fixed = choice.max_end_silence_ms
        # the VAD settings of every 2pass connection's stream (None: the model's)
        self.vad_options = None if self.vad is None or fixed is None else self.vad.options.for_call(max_end_silence_time=fixed)

    @classmethod
    def load(cls, choice: ModelChoice) -> "Models":
        """Load every model ``choice`` names (each once)."""
        loaded: dict[str, Any] = {}

        def task(name: Optional[str]) -> Any:
            if not name:
                return None
            if name not in loaded:
                log.info("loading %s (%s engine)", name, choice.engine)
                loaded[name] = load_task(name, choice)
            return loaded[name]

        asr = task(choice.model)
        if asr.kind != "asr":
            raise ConfigError(f"model={choice.model!r} is a {asr.kind} model; the server's model must be an ASR model")
        online = task(choice.online_model)
        if online is not None and not hasattr(online, "create_stream"):
            raise ConfigError(f"online_model={choice.online_model!r} cannot decode streams; pass a streaming model "
                              "(e.g. paraformer-zh-streaming) or none")
        if getattr(getattr(online, "net", None), "streamable", True) is False:  # a U2 model trained without chunks
            raise ConfigError(f"online_model={choice.online_model!r} was trained without chunks and cannot decode streams")
        realtime_punc = task(choice.realtime_punc_model)
        if realtime_punc is not None and not hasattr(realtime_punc, "create_stream"):
            raise ConfigError(f"realtime_punc_model={choice.realtime_punc_model!r} keeps no per-connection state; pass a "
                              "realtime punctuation model (CTTransformerStreaming) or none (punc_model is used per segment)")
        offline = Runner(asr, "asr", task(choice.vad_model), task(choice.punc_model), {"disable_pbar": True})
        asr.lm_fusion(offline.options({}).asr)  # the model folder's LM loads now, not in the first segment's pass
        return cls(choice, offline, online, realtime_punc)

    @property
    def modes(self) -> tuple[str, ...]:
        """The WebSocket modes these models can serve."""
        modes = ["offline"]
        if self.online is not None:
            modes.append("online")
        if self.vad is not None:
            modes.append("2pass")
        return tuple(modes)

    def names(self) -> list[str]:
        """The loaded models' names, as ``/health`` and ``/v1/models`` list them."""
        c = self.choice
        return [n for n in (c.model, c.online_model, c.vad_model, c.punc_model, c.realtime_punc_model) if n]
