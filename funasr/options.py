"""``generate()`` keyword arguments as frozen option objects, parsed and checked once (torch-free).

``GenerateOptions.parse(kwargs, kind, with_vad)`` turns FunASR's keyword arguments into
``RunOptions`` (the loop), ``ASROptions``, ``VADCallOptions``, ``PipelineOptions`` and
``PuncOptions``; every value is checked before any work, and a bad one raises ``OptionError``
naming the argument, the value and what is allowed. The tasks take these objects, not kwargs.

FunASR passes one set of kwargs to every stage, so arguments meant for a stage that is not
running here are accepted: ``REFERENCE_ARGS`` are the reference's arguments that change nothing
here (ignored silently); any other unknown name is logged as a warning and ignored.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import numbers
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from funasr.errors import OptionError
from funasr.hotword import check_hotword
from funasr.search import METHODS

log = logging.getLogger(__name__)

FORMATS = ("json", "srt", "txt")
MIN_CHUNK_MS = 10  # one VAD frame
_DEVICE = re.compile(r"^(cpu|cuda|mps|xpu|npu)(:\d+)?$")

# Reference generate() arguments that change nothing here: those of models this package does not
# run (streaming ASR, SenseVoice, LLMs, speaker models).
REFERENCE_ARGS = frozenset(
    "key data_type language use_itn ban_emo_unk "
    "decoding_ctc_weight encoder_chunk_look_back decoder_chunk_look_back split_with_space "
    "return_spk_res spk_mode preset_spk_num is_streaming_input_asr".split()
)
# Constructor switches with nothing to do here (no update check; runs are deterministic).
SWITCHES = ("disable_update", "disable_log", "log_level", "seed", "ngpu", "model_revision")
# VAD streaming arguments: they act when the main model is a VAD; with an ASR model they are ignored.
VAD_STREAM_ARGS = ("chunk_size", "cache", "is_final", "is_streaming_input")


LM_WEIGHT = 0.3  # the LM weight when neither the call nor the model folder gives one
BEAM_SIZE = 10  # the beam when neither the call nor the model folder gives one


def _fail(name: str, value: Any, allowed: str) -> OptionError:
    return OptionError(f"{name}={value!r} is not allowed: {allowed}")


def _number(name: str, value: Any, *, integer: bool = False, positive: bool = False, minimum: Optional[float] = None) -> Any:
    """``value`` checked as a finite number (an int where ``integer``), > 0 where ``positive``, >= ``minimum``."""
    what = "an integer" if integer else "a number"
    limit = " > 0" if positive else f" >= {minimum:g}" if minimum is not None else ""
    allowed = f"pass {what}{limit}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise _fail(name, value, allowed)
    if integer and not float(value).is_integer():
        raise _fail(name, value, allowed)
    if not math.isfinite(value) or (positive and value <= 0) or (minimum is not None and value < minimum):
        raise _fail(name, value, allowed)
    return int(value) if integer else float(value)


def _flag(name: str, value: Any) -> bool:
    if not isinstance(value, (bool, int)) or value not in (0, 1):
        raise _fail(name, value, "pass True or False")
    return bool(value)


def check_flags(**flags: Any) -> None:
    """Raise OptionError unless every value is True or False (1 and 0 included)."""
    for name, value in flags.items():
        _flag(name, value)


def check_device(device: Any) -> Optional[str]:
    """A device string such as ``cpu``, ``cuda`` or ``cuda:1`` (None: the default)."""
    if device is None:
        return None
    if not isinstance(device, str) or not _DEVICE.match(device):
        raise _fail("device", device, "pass 'cpu', 'cuda' or 'cuda:N' (N = GPU index); PyTorch also takes 'mps'")
    return device


def check_threads(name: str, value: Any) -> Optional[int]:
    """A thread count (None or 0: the default)."""
    return None if value is None or value == 0 else _number(name, value, integer=True, positive=True)


def check_formats(formats: Any) -> tuple[str, ...]:
    """Output formats: ``"json,srt"`` or a list of names from ``FORMATS``."""
    if formats is None:
        return ()
    names = formats.split(",") if isinstance(formats, str) else formats
    if not isinstance(names, (list, tuple)) or not all(isinstance(f, str) for f in names):
        raise _fail("formats", formats, f"pass a comma-separated string or a list of {', '.join(FORMATS)}")
    names = tuple(f.strip() for f in names if f.strip())
    unknown = [f for f in names if f not in FORMATS]
    if unknown:
        raise _fail("formats", formats, f"unknown format(s) {', '.join(unknown)}; choose from {', '.join(FORMATS)}")
    return names


def check_cache(cache: Any) -> dict:
    """A streaming ``cache=``: a dict, kept by the caller between the calls of one stream."""
    if not isinstance(cache, dict):
        raise _fail("cache", cache, "pass a dict (start with {}) that is kept between the calls of one stream")
    return cache


def check_output_dir(output_dir: Any) -> Optional[Path]:
    """The output folder, created now (with its parents) and checked writable, so no work is lost at the end."""
    if output_dir is None or output_dir == "":
        return None
    if not isinstance(output_dir, (str, Path)):
        raise _fail("output_dir", output_dir, "pass a folder path")
    path = Path(output_dir)
    if path.exists() and not path.is_dir():
        raise OptionError(f"output_dir={str(output_dir)!r} is a file, not a folder; pass a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".funasr-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OptionError(f"output_dir={str(output_dir)!r} cannot be written ({e.strerror or e}); pass a writable folder") from e
    return path


@dataclass(frozen=True)
class RunOptions:
    """The input loop: ``batch_size`` inputs are loaded and recognised together (one network call)."""

    batch_size: int = 1
    fs: int = 16000  # sample rate of array / raw PCM inputs
    output_dir: Optional[Path] = None
    formats: tuple[str, ...] = ()
    disable_pbar: bool = False

    @classmethod
    def parse(cls, kw: dict[str, Any]) -> "RunOptions":
        """Checked options from ``kw`` (absent keys keep their defaults)."""
        out: dict[str, Any] = {}
        if "batch_size" in kw:
            out["batch_size"] = _number("batch_size", kw["batch_size"], integer=True, positive=True)
        if "fs" in kw:
            out["fs"] = _number("fs", kw["fs"], integer=True, positive=True)
        if "formats" in kw:
            out["formats"] = check_formats(kw["formats"])
        if "disable_pbar" in kw:
            out["disable_pbar"] = _flag("disable_pbar", kw["disable_pbar"])
        if out.get("formats") and not kw.get("output_dir"):
            raise OptionError(f"formats={kw['formats']!r} needs output_dir=: the folder to write the files to")
        out["output_dir"] = check_output_dir(kw.get("output_dir"))
        return cls(**out)


@dataclass(frozen=True)
class SearchOptions:
    """CTC / attention searches (U2 models): the method, the beam, chunked decoding, the rescoring weights."""

    decoding_method: str = "attention_rescoring"  # one of funasr.search.METHODS
    beam_size: Optional[int] = None  # None: the model folder's (``ngram_lm.beam_size`` for an LM search), else BEAM_SIZE
    decoding_chunk_size: int = -1  # encoder frames per attention chunk; -1: full context
    num_decoding_left_chunks: int = -1  # chunks to the left each chunk sees; -1: all
    ctc_weight: float = 0.5  # rescoring: weight of the CTC score
    reverse_weight: float = 0.0  # rescoring: weight of the right-to-left decoder (U2++)

    def beam(self, declared: Optional[int] = None) -> int:
        """The beam: the call's, else ``declared`` (the model folder's), else BEAM_SIZE."""
        return int(self.beam_size or declared or BEAM_SIZE)

    @classmethod
    def parse(cls, kw: dict[str, Any]) -> "SearchOptions":
        """Checked options from ``kw``."""
        out: dict[str, Any] = {}
        method = kw.get("decoding_method")
        if method is not None:
            if method not in METHODS:
                raise _fail("decoding_method", method, f"choose from {', '.join(METHODS)}")
            out["decoding_method"] = method
        if kw.get("beam_size") is not None:
            out["beam_size"] = _number("beam_size", kw["beam_size"], integer=True, positive=True)
        chunk = kw.get("decoding_chunk_size")
        if chunk is not None:
            chunk = _number("decoding_chunk_size", chunk, integer=True, minimum=-1)
            if chunk == 0:
                raise _fail("decoding_chunk_size", 0, "pass -1 (full context) or a chunk size > 0 in encoder frames, e.g. 16")
            out["decoding_chunk_size"] = chunk
        if kw.get("num_decoding_left_chunks") is not None:
            out["num_decoding_left_chunks"] = _number("num_decoding_left_chunks", kw["num_decoding_left_chunks"], integer=True, minimum=-1)
        if kw.get("ctc_weight") is not None:
            out["ctc_weight"] = _number("ctc_weight", kw["ctc_weight"], minimum=0)
        if kw.get("reverse_weight") is not None:
            out["reverse_weight"] = _number("reverse_weight", kw["reverse_weight"], minimum=0)
            if out["reverse_weight"] > 1:
                raise _fail("reverse_weight", kw["reverse_weight"], "pass a number from 0 to 1")
        return cls(**out)


@dataclass(frozen=True)
class ASROptions:
    """Recognition: hotwords (SeACo, Contextual), timestamps, the Contextual bias scale, the search (U2), an n-gram LM
    (Paraformer: beam search over the decoder's positions with ``search.beam_size``)."""

    hotword: Any = None  # words separated by spaces, a list, a .txt file or a URL
    timestamps: bool = False  # ``pred_timestamp`` / ``output_timestamp``
    clas_scale: float = 1.0
    search: SearchOptions = SearchOptions()
    lm_file: Optional[Path] = None  # ARPA / KenLM binary n-gram LM over the model's tokens (default: the model folder's)
    lm_weight: Optional[float] = None  # None: the model folder's ``ngram_lm.lm_weight``, else LM_WEIGHT; 0: no LM

    @classmethod
    def parse(cls, kw: dict[str, Any]) -> "ASROptions":
        """Checked options from ``kw``."""
        check_hotword(kw.get("hotword"))
        out: dict[str, Any] = {"hotword": kw.get("hotword")}
        out["timestamps"] = any(_flag(k, kw[k]) for k in ("pred_timestamp", "output_timestamp") if kw.get(k) is not None)
        if kw.get("clas_scale") is not None:
            out["clas_scale"] = _number("clas_scale", kw["clas_scale"], minimum=0)
        out["search"] = SearchOptions.parse(kw)
        if kw.get("lm_file") is not None:
            lm = Path(str(kw["lm_file"])).expanduser()
            if not lm.is_file():
                raise _fail("lm_file", kw["lm_file"], "pass an ARPA (.arpa, .arpa.gz) or KenLM binary n-gram LM file")
            out["lm_file"] = lm
        if kw.get("lm_weight") is not None:
            out["lm_weight"] = _number("lm_weight", kw["lm_weight"], minimum=0)
        if out["timestamps"] and out["search"].decoding_method == "attention":
            raise OptionError("decoding_method='attention' gives no CTC timestamps: drop output_timestamp/pred_timestamp "
                              "or use attention_rescoring, ctc_prefix_beam_search or ctc_greedy_search")
        return cls(**out)


@dataclass(frozen=True)
class StreamASROptions:
    """A streaming ASR call (``ParaformerStreaming``): chunking, look-back, the ``cache`` dict holding the stream, ``is_final``."""

    chunk_size: tuple[int, int, int] = (0, 10, 5)  # [left, new, look-ahead] frames of 60 ms
    encoder_chunk_look_back: int = 0  # the reference's generate() defaults; create_stream defaults to the trained 4 / 1
    decoder_chunk_look_back: int = 0
    cache: Optional[dict] = None
    is_final: Optional[bool] = None  # None: True without a cache (the input is a whole utterance), else False

    @classmethod
    def parse(cls, kw: dict[str, Any]) -> "StreamASROptions":
        """Checked options from ``kw``."""
        out: dict[str, Any] = {}
        if kw.get("chunk_size") is not None:
            out["chunk_size"] = check_chunk_size(kw["chunk_size"])
        for k in ("encoder_chunk_look_back", "decoder_chunk_look_back"):
            if kw.get(k) is not None:
                out[k] = _number(k, kw[k], integer=True, minimum=-1)
        if kw.get("cache") is not None:
            if not isinstance(kw["cache"], dict):
                raise _fail("cache", kw["cache"], "pass a dict (start with {}) that is kept between the calls of one stream")
            out["cache"] = kw["cache"]
        if kw.get("is_final") is not None:
            out["is_final"] = _flag("is_final", kw["is_final"])
        return cls(**out)


def check_chunk_size(value: Any) -> tuple[int, int, int]:
    """A streaming ASR ``chunk_size``: three integers [left >= 0, new >= 1, look-ahead >= 1] (frames of 60 ms)."""
    allowed = "pass [left, new, look-ahead] frames of 60 ms, e.g. [0, 10, 5] (600 ms) or [0, 8, 4] (480 ms); new and look-ahead >= 1"
    if not isinstance(value, (list, tuple)) or len(value) != 3:
        raise _fail("chunk_size", value, allowed)
    if any(isinstance(v, bool) or not isinstance(v, numbers.Integral) for v in value):
        raise _fail("chunk_size", value, allowed)
    c0, c1, c2 = (int(v) for v in value)
    if c0 < 0 or c1 < 1 or c2 < 1:
        raise _fail("chunk_size", value, allowed)
    return c0, c1, c2


@dataclass(frozen=True)
class VADCallOptions:
    """A VAD call: chunking and streaming (``cache``), and segmenter settings for this call only (None: the model's)."""

    chunk_size: float = 60000.0  # ms of audio per step (the reference's default); below 15 s the input is taken as a stream
    is_final: Optional[bool] = None
    cache: Optional[dict] = None
    is_streaming_input: Optional[bool] = None
    max_end_silence_time: Optional[int] = None
    speech_noise_thres: Optional[float] = None
    dynamic_silence: Optional[bool] = None
    silence_schedule: Optional[tuple[tuple[float, int], ...]] = None

    @classmethod
    def parse(cls, kw: dict[str, Any], stream: bool = True) -> "VADCallOptions":
        """Checked options from ``kw``; ``stream=False`` (VAD inside the pipeline) reads the segmenter settings only."""
        out: dict[str, Any] = {}
        if stream:
            if kw.get("chunk_size") is not None:
                out["chunk_size"] = _number("chunk_size", kw["chunk_size"], minimum=MIN_CHUNK_MS)
            if kw.get("cache") is not None:
                out["cache"] = check_cache(kw["cache"])
            for k in ("is_final", "is_streaming_input"):
                if kw.get(k) is not None:
                    out[k] = _flag(k, kw[k])
        out.update(segmenter_settings(kw))
        return cls(**out)

    def segmenter_overrides(self) -> dict[str, Any]:
        """The segmenter settings given for this call (for ``VADOptions.for_call``)."""
        names = ("max_end_silence_time", "speech_noise_thres", "dynamic_silence", "silence_schedule")
        return {k: getattr(self, k) for k in names if getattr(self, k) is not None}


def segmenter_settings(kw: dict[str, Any]) -> dict[str, Any]:
    """Checked VAD segmenter settings found in ``kw`` (generate() or constructor arguments)."""
    out: dict[str, Any] = {}
    if kw.get("max_end_silence_time") is not None:
        out["max_end_silence_time"] = _number("max_end_silence_time", kw["max_end_silence_time"], integer=True, positive=True)
    if kw.get("max_single_segment_time") is not None:  # checked; it takes effect from the constructor (the config)
        _number("max_single_segment_time", kw["max_single_segment_time"], integer=True, positive=True)
    if kw.get("speech_noise_thres") is not None:
        out["speech_noise_thres"] = _number("speech_noise_thres", kw["speech_noise_thres"])
    if kw.get("dynamic_silence") is not None:
        out["dynamic_silence"] = _flag("dynamic_silence", kw["dynamic_silence"])
    if kw.get("silence_schedule") is not None:
        try:
            out["silence_schedule"] = tuple((float(a), int(b)) for a, b in kw["silence_schedule"])
        except (TypeError, ValueError) as e:
            raise _fail("silence_schedule", kw["silence_schedule"], "pass (seconds, silence ms) pairs") from e
    return out


@dataclass(frozen=True)
class PipelineOptions:
    """VAD -> ASR -> punctuation: segment batches by seconds (``batch_size`` does not apply), merging, sentences."""

    batch_size_s: float = 300.0  # seconds of (padded) speech per ASR batch
    batch_size_threshold_s: float = 60.0  # segments at least this long run alone
    merge_vad: bool = False
    merge_length_s: float = 15.0
    sentence_timestamp: bool = False

    @classmethod
    def parse(cls, kw: dict[str, Any]) -> "PipelineOptions":
        """Checked options from ``kw``."""
        out: dict[str, Any] = {}
        for k in ("batch_size_s", "batch_size_threshold_s"):
            if kw.get(k) is not None:
                out[k] = _number(k, kw[k], minimum=0)
        if kw.get("merge_length_s") is not None:
            out["merge_length_s"] = _number("merge_length_s", kw["merge_length_s"], positive=True)
        for k in ("merge_vad", "sentence_timestamp"):
            if kw.get(k) is not None:
                out[k] = _flag(k, kw[k])
        return cls(**out)


@dataclass(frozen=True)
class PuncOptions:
    """Punctuation: words per model window; ``return_raw_text`` keeps the unpunctuated ASR text."""

    split_size: int = 20
    return_raw_text: bool = False
    cache: Optional[dict] = None  # realtime punctuation: the dict kept between the calls of one text stream

    @classmethod
    def parse(cls, kw: dict[str, Any], stream: bool = False) -> "PuncOptions":
        """Checked options from ``kw``; ``stream`` (punctuation is the main model) reads ``cache``."""
        out: dict[str, Any] = {}
        if stream and kw.get("cache") is not None:
            out["cache"] = check_cache(kw["cache"])
        if kw.get("split_size") is not None:
            out["split_size"] = _number("split_size", kw["split_size"], integer=True, positive=True)
        if kw.get("return_raw_text") is not None:
            out["return_raw_text"] = _flag("return_raw_text", kw["return_raw_text"])
        return cls(**out)


def _names(*classes: type) -> set[str]:
    return {f.name for c in classes for f in dataclasses.fields(c)}


KNOWN_ARGS = frozenset(
    _names(RunOptions, ASROptions, SearchOptions, VADCallOptions, PipelineOptions, PuncOptions)
    | {"pred_timestamp", "output_timestamp", "max_single_segment_time"}
) - {"timestamps", "search"}

# generate() arguments the constructor may set for every call (VAD settings go to the VAD's config instead)
DEFAULTABLE = KNOWN_ARGS - _names(VADCallOptions) - {"max_single_segment_time"}


@dataclass(frozen=True)
class GenerateOptions:
    """All of one ``generate()`` call's options, checked."""

    run: RunOptions = RunOptions()
    asr: ASROptions = ASROptions()
    vad: VADCallOptions = VADCallOptions()
    pipeline: PipelineOptions = PipelineOptions()
    punc: PuncOptions = PuncOptions()
    stream: StreamASROptions = StreamASROptions()

    @classmethod
    def parse(cls, kw: dict[str, Any], kind: str = "asr", with_vad: bool = False, streaming: bool = False) -> "GenerateOptions":
        """Check ``kw`` for a main model of ``kind`` ("asr", "vad" or "punc"), with or without a VAD before it;
        ``streaming``: the main model is a streaming ASR model (``cache=`` / ``chunk_size=`` are its own)."""
        unknown = sorted(k for k in kw if k not in KNOWN_ARGS and k not in REFERENCE_ARGS and k not in SWITCHES)
        if unknown:
            log.warning("ignoring unknown generate() argument(s): %s", ", ".join(unknown))
        ignored = [k for k in VAD_STREAM_ARGS if kind != "vad" and not streaming and kw.get(k) is not None and (kind, k) != ("punc", "cache")]
        if ignored:
            log.warning("ignoring %s: streaming arguments of a VAD (or streaming ASR) model; %s runs whole inputs",
                        ", ".join(ignored), "the VAD here" if with_vad else "this model")
        asr = ASROptions.parse(kw)
        if streaming and asr.lm_file is not None:
            raise OptionError(f"lm_file={str(asr.lm_file)!r}: a streaming model decodes greedily here; an n-gram LM works "
                              "with the offline Paraformer models")
        return cls(
            run=RunOptions.parse(kw),
            asr=asr,
            vad=VADCallOptions.parse(kw, stream=kind == "vad"),
            pipeline=PipelineOptions.parse(kw),
            punc=PuncOptions.parse(kw, stream=kind == "punc"),
            stream=StreamASROptions.parse(kw) if streaming else StreamASROptions(),
        )



def check_constructor_args(kwargs: dict[str, Any], vad_kwargs: Optional[dict], punc_kwargs: Optional[dict],
                           **named: Any) -> dict[str, Any]:
    """``AutoModel(...)`` arguments checked: reference switches dropped from ``kwargs`` (in place), VAD settings
    checked, and the generate() defaults returned (``named``: the constructor's own defaults, e.g. batch_size)."""
    for key in SWITCHES:
        kwargs.pop(key, None)
    for given in (kwargs, vad_kwargs or {}, punc_kwargs or {}):
        if not isinstance(given, dict):
            raise _fail("vad_kwargs/punc_kwargs", given, "pass a dict of keyword arguments")
        segmenter_settings(given)
    return {**{k: v for k, v in kwargs.items() if k in DEFAULTABLE}, **named}
