"""FunASR's WebSocket protocol: the client's first JSON message, its control messages and the server's replies (no I/O).

A client opens the connection, sends one JSON text message (``mode``, ``chunk_size``, ``wav_name``,
``wav_format``, ``hotwords``, ``audio_fs``, ...), then binary frames of raw int16 mono PCM, then
``{"is_speaking": false}``. Binary frames on the realtime path are never sniffed for a container.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from funasr.errors import FunASRError
from funasr.sentences import PUNC_MARKS

MODES = ("offline", "online", "2pass")
SAMPLE_RATES = (8000, 16000)
PCM_FORMATS = ("pcm",)
NOT_PCM = "ERROR. Real-time transcription service ONLY SUPPORT PCM stream."  # FunASR's own wording
WRONG_CHUNK_SIZE = "Wrong chunk_size"  # FunASR's own wording (C++ server)
DEFAULT_CHUNK_SIZE = (5, 10, 5)
_UNIT = re.compile(r"[A-Za-z0-9']+|\S")


class ProtocolError(FunASRError):
    """A client message the protocol does not allow; the text is sent to the client as ``error``."""


@dataclass(frozen=True)
class SessionConfig:
    """What a connection's first message asked for, checked."""

    mode: str = "2pass"
    chunk_size: tuple[int, int, int] = DEFAULT_CHUNK_SIZE
    chunk_interval: int = 10
    encoder_chunk_look_back: int = 4
    decoder_chunk_look_back: int = 0
    wav_name: str = "microphone"
    wav_format: str = "pcm"
    hotwords: Optional[str] = None
    itn: bool = True
    audio_fs: int = 16000

    @property
    def realtime(self) -> bool:
        """Online and 2pass modes decode audio as it arrives."""
        return self.mode != "offline"

    @property
    def vad_chunk_ms(self) -> int:
        """How much audio one VAD step takes (the reference: 60 ms for chunk_size[1]=10, chunk_interval=10)."""
        return max(10, 60 * self.chunk_size[1] // self.chunk_interval)


def _int(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer() or not low <= value <= high:
        raise ProtocolError(f"{name}={value!r} is not allowed: pass an integer from {low} to {high}")
    return int(value)


def parse_chunk_size(value: Any) -> tuple[int, int, int]:
    """``[5, 10, 5]`` or ``"5,10,5"``: exactly three non-negative integers, the middle one > 0."""
    items = value.split(",") if isinstance(value, str) else value
    try:
        if not isinstance(items, (list, tuple)) or len(items) != 3:
            raise ValueError
        parts = tuple(int(str(x).strip()) if isinstance(x, str) else x for x in items)
        if not all(isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= 100 for x in parts) or parts[1] == 0:
            raise ValueError
    except ValueError:
        raise ProtocolError(f"{WRONG_CHUNK_SIZE}: chunk_size={value!r}; pass three integers such as [5, 10, 5] "
                            "or \"5,10,5\" (0..100, the middle one > 0)") from None
    return parts  # type: ignore[return-value]


def parse_json(text: str) -> dict:
    """A text message as a JSON object."""
    try:
        message = json.loads(text)
    except ValueError as e:
        raise ProtocolError(f"malformed JSON message ({e.msg} at character {e.pos}); send one JSON object per text message") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"text messages must be JSON objects, got {type(message).__name__}")
    return message


def parse_first(message: dict) -> SessionConfig:
    """The connection's first message as a checked ``SessionConfig``."""
    mode = message.get("mode", "2pass")
    if mode not in MODES:
        raise ProtocolError(f"mode={mode!r} is not supported: use one of {', '.join(MODES)}")
    fmt = str(message.get("wav_format", "pcm") or "pcm").lower()
    if mode != "offline" and fmt not in PCM_FORMATS:
        raise ProtocolError(NOT_PCM)
    fs = message.get("audio_fs", 16000)
    if fs not in SAMPLE_RATES or isinstance(fs, bool):
        raise ProtocolError(f"audio_fs={fs!r} is not supported: PCM must be 8000 or 16000 Hz")
    hotwords = message.get("hotwords")
    if hotwords is not None and not isinstance(hotwords, str):
        raise ProtocolError(f"hotwords must be a string (space-separated words, or a JSON object string), got {type(hotwords).__name__}")
    return SessionConfig(
        mode=mode,
        chunk_size=parse_chunk_size(message.get("chunk_size", list(DEFAULT_CHUNK_SIZE))),
        chunk_interval=_int("chunk_interval", message.get("chunk_interval", 10), 1, 100),
        encoder_chunk_look_back=_int("encoder_chunk_look_back", message.get("encoder_chunk_look_back", 4), 0, 100),
        decoder_chunk_look_back=_int("decoder_chunk_look_back", message.get("decoder_chunk_look_back", 0), 0, 100),
        wav_name=str(message.get("wav_name", "microphone"))[:200],
        wav_format=fmt,
        hotwords=_hotword_string(hotwords),
        itn=bool(message.get("itn", True)),
        audio_fs=int(fs),
    )


def _hotword_string(hotwords: Optional[str]) -> Optional[str]:
    """The model's hotword string: a JSON ``{"word": weight}`` object gives its words; empty means none."""
    if not hotwords or not hotwords.strip():
        return None
    text = hotwords.strip()
    if text.startswith("{"):
        try:
            words = json.loads(text)
        except ValueError:
            return text
        if isinstance(words, dict):
            return " ".join(str(w) for w in words) or None
    return text


def is_end(message: dict) -> bool:
    """``{"is_speaking": false}`` (or C++'s ``"is_finished": true``) ends the audio."""
    return message.get("is_speaking") is False or message.get("is_finished") is True


def pcm_samples(data: bytes) -> np.ndarray:
    """Raw little-endian int16 mono PCM as float32 in [-1, 1) (an odd trailing byte must be kept by the caller)."""
    return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768.0


def reply(mode: str, text: str, wav_name: str, is_final: bool, **extra: Any) -> dict:
    """A server message with the fields FunASR always sends."""
    return {"mode": mode, "text": text, "wav_name": wav_name, "is_final": is_final, **extra}


def timestamp_string(stamps: list) -> str:
    """Timestamps as the C++ server sends them: the string ``"[[100,200],[200,500]]"``."""
    return json.dumps([[int(b), int(e)] for b, e in stamps], separators=(",", ":"))


def stamp_sents(sentences: list[dict]) -> list[dict]:
    """``sentence_info`` (text with its closing mark, start, end, timestamp) as FunASR's ``stamp_sents``."""
    out = []
    for s in sentences:
        text = str(s.get("text", "")).strip()
        punc = text[-1] if text and text[-1] in PUNC_MARKS else ""
        body = text[: len(text) - len(punc)] if punc else text
        out.append({"text_seg": " ".join(_UNIT.findall(body)), "punc": punc, "start": int(s["start"]), "end": int(s["end"]),
                    "ts_list": [[int(b), int(e)] for b, e in s.get("timestamp", [])]})
    return out
