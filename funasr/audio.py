"""Audio input: every kind the reference accepts -> float32 mono 16 kHz waveforms with keys."""
from __future__ import annotations

import hashlib
import io
import json
import logging
import numbers
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np
import soundfile as sf
import soxr

from funasr.errors import AudioError, FunASRError
from funasr.hub import fetch_url, is_url

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
# Accepted input sample rates. Below 1 kHz there is no speech band left, and the bound keeps
# resampling to at most 16x the input's samples; 384 kHz is the highest rate of audio hardware
# and formats in use. A header outside this range is damaged or forged.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 384000
# The longest input decoded into memory (16 kHz float32: 4 h = 0.9 GB), checked from the header
# before decoding, so a small file cannot claim gigabytes. Raise it with $FUNASR_MAX_AUDIO_SECONDS
# or by setting MAX_AUDIO_SECONDS (which wins); "inf" lifts it. 16 kHz PCM files that the VAD
# pipeline reads from disk piece by piece are not bound by it.
DEFAULT_MAX_AUDIO_SECONDS = 4 * 3600.0
MAX_AUDIO_SECONDS: Optional[float] = None
MAX_AUDIO_SECONDS_ENV = "FUNASR_MAX_AUDIO_SECONDS"
# Float samples are in [-1, 1], or integer PCM values held as floats (at most 32-bit: 2**31); a larger
# peak is no recording, and would overflow the float32 features.
MAX_SAMPLE_PEAK = 2.0**31
LIST_SUFFIXES = (".scp", ".txt", ".json", ".jsonl", ".text")
_MAGIC = (b"RIFF", b"ID3", b"OggS", b"fLaC", b"FORM", b"\x1aE\xdf\xa3")  # + "ftyp" at offset 4, MPEG frames


@dataclass
class AudioItem:
    """One input: its key and waveform (or its fbank frames, computed already), or the error that kept it from loading."""

    key: str
    waveform: Optional[np.ndarray] = None
    error: Optional[FunASRError] = None
    source: Any = None
    fbank: Optional[np.ndarray] = None  # (T, n_mels) Kaldi fbank of the audio; an ASR task then skips its own


@dataclass
class TextItem:
    """One text input (for punctuation)."""

    key: str
    text: str
    error: Optional[FunASRError] = None


@dataclass
class Source:
    """One input before decoding: a key and what to decode (path, URL, bytes or samples), or why it cannot be."""

    key: str
    value: Any
    error: Optional[FunASRError] = None


def content_key(data: Union[bytes, np.ndarray]) -> str:
    """A deterministic ``rand_key_`` key (13 characters) from the content of an anonymous input."""
    raw = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    return "rand_key_" + hashlib.blake2b(raw, digest_size=16).hexdigest()[:13]


def to_numpy(value: Any) -> Optional[np.ndarray]:
    """A numpy view of an ndarray or a torch tensor (without importing torch); None otherwise."""
    if isinstance(value, np.ndarray):
        return value
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        tensor = value.detach().cpu()
        if tensor.is_floating_point() and tensor.dtype.itemsize < 4:  # float16 / bfloat16
            tensor = tensor.float()
        return tensor.numpy()  # integer PCM keeps its type, to be scaled to [-1, 1] as numpy's is
    return None


def read_list_file(path: Path) -> list[Source]:
    """Entries of ``wav.scp`` / ``.txt`` (``key value`` or ``value`` lines), ``.jsonl`` (``key``/``source``
    objects) or ``.json`` (an array of such objects or of paths); a malformed entry becomes a ``Source`` with its error."""
    try:
        text = path.read_text(encoding="utf-8-sig")  # a byte order mark (Windows editors) is not part of the first key
    except (OSError, UnicodeDecodeError) as e:
        raise AudioError(f"cannot read the list file {path}: {e}") from e
    if path.suffix == ".json" and text.lstrip().startswith("["):
        try:
            entries = json.loads(text)
        except ValueError as e:
            raise AudioError(f"{path} is not valid JSON ({e}); pass an array of paths or of {{'source', 'key'}} objects") from e
        return [_json_entry(entry, path, f"item {n}") for n, entry in enumerate(entries, 1)]
    sources: list[Source] = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line:
            continue
        if path.suffix in (".jsonl", ".json") and line.startswith(("{", "[", '"')):
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            sources.append(_json_entry(entry, path, f"line {n}"))
            continue
        parts = line.split(maxsplit=1)
        if len(parts) == 2:
            sources.append(Source(parts[0], _relative_to(parts[1].strip(), path.parent)))
        else:
            sources.append(Source(Path(parts[0]).stem, _relative_to(parts[0], path.parent)))
    if not sources:
        log.warning("the list file %s lists no inputs", path)
    return sources


def _json_entry(entry: Any, path: Path, where: str) -> Source:
    """A list file's JSON entry (an object with ``source`` and optional ``key``, or a path string) as a source."""
    if isinstance(entry, str):
        return Source(Path(entry).stem, _relative_to(entry, path.parent))
    if isinstance(entry, dict) and isinstance(entry.get("source"), str):
        value = _relative_to(entry["source"], path.parent)
        return Source(str(entry.get("key") or Path(entry["source"]).stem), value)
    key = f"{path.stem}_{where.replace(' ', '')}"
    return Source(key, None, AudioError(f"{path} {where} is not a JSON object with a 'source' path (or a path string)"))


def _relative_to(value: str, base: Path) -> str:
    """A list-file entry, resolved against the list file's folder when it names a file there."""
    if is_url(value) or Path(value).is_absolute() or Path(value).exists():
        return value
    candidate = base / value
    return str(candidate) if candidate.exists() else value


def collect_sources(data: Any) -> tuple[list[Source], bool]:
    """Flatten an input into sources with unique keys; the flag says whether it was a single input.

    A single input that cannot be read raises; in a list, such an item becomes a ``Source`` with its error.
    """
    if isinstance(data, (list, tuple)):
        sources: list[Source] = []
        for n, item in enumerate(data):
            try:
                sources.extend(_sources(item))
            except FunASRError as e:
                sources.append(Source(f"input_{n}", item, e))
        return _distinct_keys(sources), False
    sources = _sources(data)
    single = not (isinstance(data, (str, Path)) and _is_list_file(data))
    return _distinct_keys(sources) if not single else sources, single


def _is_list_file(value: Union[str, Path]) -> bool:
    return not is_url(str(value)) and Path(value).suffix.lower() in LIST_SUFFIXES and Path(value).is_file()


def _sources(data: Any) -> list[Source]:
    """The sources of one input (a list file gives several)."""
    if isinstance(data, (str, Path)):
        text = str(data)
        if is_url(text):
            return [Source(Path(text.split("?")[0]).stem or "url", text)]
        if _is_list_file(data):
            return read_list_file(Path(text))
        return [Source(Path(text).stem, text)]
    array = to_numpy(data)
    if array is not None:
        if array.dtype.kind not in "iuf":
            raise AudioError(f"an array of {array.dtype} cannot be audio; pass samples as floats in [-1, 1] or integer PCM")
        return [Source(content_key(np.ascontiguousarray(array)), array)]
    if isinstance(data, (bytes, bytearray, memoryview)):
        return [Source(content_key(bytes(data)), bytes(data))]
    raise AudioError(
        f"funasr cannot read an input of type {type(data).__name__}; pass a path, URL, list file, "
        "bytes, numpy array or torch tensor"
    )


def _distinct_keys(sources: list) -> list:
    """Suffix repeated keys (``a``, ``a_1``, …), skipping suffixed names other inputs already hold, so that keys are unique."""
    taken = {s.key for s in sources}
    seen: set[str] = set()
    for s in sources:
        if s.key in seen:
            n = 1
            while f"{s.key}_{n}" in taken:
                n += 1
            s.key = f"{s.key}_{n}"
            taken.add(s.key)
        seen.add(s.key)
    return sources


def mix_to_mono(samples: np.ndarray, name: str) -> np.ndarray:
    """Average channels; the channel axis is the short one, whichever side it is on."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise AudioError(f"{name}: expected 1-D or 2-D audio samples, got shape {samples.shape}")
    axis = 0 if samples.shape[0] < samples.shape[1] else 1
    return samples.mean(axis=axis)


def to_float32(samples: np.ndarray, name: str = "audio") -> np.ndarray:
    """Integer PCM -> float32 in [-1, 1] (unsigned PCM centred on its midpoint); floats pass through as float32.

    64-bit integers (no PCM format has them, but numpy makes them of Python ints) are read as the narrowest
    signed PCM their values fit: int16, else int32.
    """
    if samples.dtype.kind in "iu" and samples.dtype.itemsize == 8:
        samples = narrowest_pcm(samples, name)
    if np.issubdtype(samples.dtype, np.unsignedinteger):
        mid = float(np.iinfo(samples.dtype).max // 2 + 1)
        return ((samples.astype(np.float64) - mid) / mid).astype(np.float32)
    if np.issubdtype(samples.dtype, np.integer):
        return (samples.astype(np.float32) / float(np.iinfo(samples.dtype).max + 1)).astype(np.float32)
    return samples.astype(np.float32, copy=False)


def narrowest_pcm(samples: np.ndarray, name: str) -> np.ndarray:
    """A 64-bit integer array as int16 PCM if its values fit, else int32; beyond that it is no PCM."""
    lo, hi = (int(samples.min()), int(samples.max())) if samples.size else (0, 0)
    for pcm in (np.int16, np.int32):
        if np.iinfo(pcm).min <= lo and hi <= np.iinfo(pcm).max:
            return samples.astype(pcm)
    raise AudioError(f"{name}: a {samples.dtype} array with values from {lo} to {hi} is beyond 32-bit PCM; "
                     "pass int16 or int32 PCM, or floats in [-1, 1]")


def max_audio_seconds() -> float:
    """The longest input decoded into memory: MAX_AUDIO_SECONDS, else $FUNASR_MAX_AUDIO_SECONDS, else 4 hours."""
    if MAX_AUDIO_SECONDS is not None:
        return float(MAX_AUDIO_SECONDS)
    text = os.environ.get(MAX_AUDIO_SECONDS_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_MAX_AUDIO_SECONDS
    except ValueError:
        value = float("nan")
    if not value > 0:
        raise AudioError(
            f"{MAX_AUDIO_SECONDS_ENV}={text!r} is not a positive number of seconds; "
            f"set it to e.g. {DEFAULT_MAX_AUDIO_SECONDS:.0f} (4 hours) or 'inf', or unset it"
        )
    return value


def check_sample_rate(fs: Any, name: str) -> None:
    """Raise AudioError unless ``fs`` is a sample rate in MIN_SAMPLE_RATE..MAX_SAMPLE_RATE Hz."""
    if isinstance(fs, bool) or not isinstance(fs, numbers.Real) or not MIN_SAMPLE_RATE <= fs <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"{name}: sample rate {fs!r} Hz is outside the accepted {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz "
            "(a damaged or forged header, or a wrong fs= for raw samples); pass the recording's real rate"
        )


def check_length(frames: int, fs: float, name: str) -> None:
    """Raise AudioError when ``frames`` samples at ``fs`` Hz are longer than max_audio_seconds()."""
    seconds, limit = frames / fs, max_audio_seconds()
    if seconds > limit:
        raise AudioError(
            f"{name}: {seconds:.1f} s of audio is longer than the {limit:g} s limit; cut it into pieces, or raise "
            f"the limit with {MAX_AUDIO_SECONDS_ENV} or funasr.audio.MAX_AUDIO_SECONDS"
        )


def resample(samples: np.ndarray, fs: int, target: int = SAMPLE_RATE) -> np.ndarray:
    """Resample with soxr (high quality) when the rates differ."""
    if fs == target or len(samples) == 0:
        return samples
    return soxr.resample(samples, fs, target, quality="HQ").astype(np.float32, copy=False)


def _decode_with_ffmpeg(data: Union[str, bytes], name: str, why: str) -> tuple[np.ndarray, int]:
    """Decode what libsndfile cannot (mp4/m4a, webm) with the ffmpeg program, when installed."""
    if shutil.which("ffmpeg") is None:
        raise AudioError(f"{name}: cannot decode this audio ({why}); convert it to wav/flac/ogg/mp3 or install ffmpeg")
    src = "pipe:0" if isinstance(data, bytes) else data
    limit = max_audio_seconds()
    bound = ["-t", f"{limit + 1:.0f}"] if np.isfinite(limit) else []  # ffmpeg resamples: bound what it writes
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", src, *bound, "-f", "s16le", "-ac", "1", "-ar", str(SAMPLE_RATE), "-"]
    proc = subprocess.run(cmd, input=data if isinstance(data, bytes) else None, capture_output=True)
    if proc.returncode != 0:
        raise AudioError(f"{name}: cannot decode this audio: {proc.stderr.decode(errors='replace').strip()}")
    check_length(len(proc.stdout) // 2, SAMPLE_RATE, name)
    return to_float32(np.frombuffer(proc.stdout, dtype=np.int16)), SAMPLE_RATE


# libsndfile's WAV log line for a data chunk whose header size differs from the bytes present
_WAV_DATA_SIZE = re.compile(r"^data\s*:\s*(\d+) \(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_SIZE = 0xFFFFFFFF  # what streaming writers put in the header when the length is not known


def read_header(data: Union[str, bytes], name: str) -> Optional[sf._SoundFileInfo]:
    """libsndfile's view of the header, its sample rate checked; None when libsndfile does not read the format."""
    try:
        info = sf.info(io.BytesIO(data) if isinstance(data, bytes) else data)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        return None
    check_sample_rate(info.samplerate, name)
    return info


def warn_if_truncated(info: sf._SoundFileInfo, name: str) -> None:
    """Log a warning when a WAV file holds fewer samples than its header announces (what is there is decoded)."""
    sizes = _WAV_DATA_SIZE.search(info.extra_info or "")
    if sizes and _UNKNOWN_SIZE != int(sizes[1]) > int(sizes[2]):
        log.warning(
            "%s is truncated: its header announces %s bytes of samples, the file holds %s; decoding what is there",
            name, sizes[1], sizes[2],
        )


def _decode(data: Union[str, bytes], name: str) -> tuple[np.ndarray, int]:
    """Decode a file path or container bytes to (samples, sample rate); the header's rate and length are checked first."""
    if (len(data) if isinstance(data, bytes) else os.path.getsize(data)) == 0:
        raise AudioError(f"{name}: the file is empty (0 bytes); pass a complete recording")
    info = read_header(data, name)
    if info is None:
        return _decode_with_ffmpeg(data, name, "libsndfile does not read its format")
    check_length(info.frames, info.samplerate, name)
    warn_if_truncated(info, name)
    try:
        samples, fs = sf.read(io.BytesIO(data) if isinstance(data, bytes) else data, dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as e:  # a damaged or truncated compressed stream
        return _decode_with_ffmpeg(data, name, f"libsndfile: {e}; the file may be truncated or damaged")
    return samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0], fs


def has_container_magic(data: bytes) -> bool:
    """True if ``data`` starts like an audio container (or MPEG audio libsndfile reads) rather than raw PCM."""
    if data[:4] in _MAGIC or data[:3] == b"ID3" or data[4:8] == b"ftyp":
        return True
    if len(data) > 1 and data[0] == 0xFF and (data[1] & 0xE0) == 0xE0:  # an MPEG frame sync word
        try:
            return sf.info(io.BytesIO(data)).frames > 0
        except (sf.LibsndfileError, RuntimeError):
            return False
    return False


def source_name(source: Source) -> str:
    """How messages name an input: its path or URL (cut to 200 characters), else its key."""
    return str(source.value)[:200] if isinstance(source.value, (str, Path)) else source.key


def decode_source(source: Source, fs: int = SAMPLE_RATE, empty_ok: bool = False) -> np.ndarray:
    """Decode one source to a float32 mono waveform at 16 kHz (``empty_ok``: an array or bytes may hold no samples)."""
    value, name = source.value, source_name(source)
    array = to_numpy(value)
    if array is not None:
        check_sample_rate(fs, name)
        check_length(max(array.shape, default=0), fs, name)
        samples, rate = mix_to_mono(to_float32(array, name), name), fs  # scaled before channels are averaged
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
        if has_container_magic(data):
            samples, rate = _decode(data, name)
        else:
            check_sample_rate(fs, name)
            check_length(len(data) // 2, fs, name)
            samples, rate = to_float32(np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2")), fs
    elif is_url(str(value)):
        samples, rate = _decode(fetch_url(str(value), "audio", AudioError), name)
    else:
        if not str(value).strip():
            raise AudioError("an input is an empty path; pass an audio file, URL or list file")
        path = Path(str(value))
        if not path.exists():
            raise AudioError(f"audio file {path} does not exist; check the path")
        if path.is_dir():
            raise AudioError(f"{path} is a directory; pass the audio files in it (or a wav.scp list)")
        samples, rate = _decode(str(path), name)
    if samples.size == 0 and not (empty_ok and (array is not None or isinstance(value, (bytes, bytearray)))):
        raise AudioError(f"{name}: the audio holds no samples; pass a non-empty recording")
    if not np.all(np.isfinite(samples)):
        raise AudioError(f"{name}: the audio holds NaN or infinite samples")
    peak = float(np.abs(samples).max(initial=0.0))
    if peak > MAX_SAMPLE_PEAK:
        raise AudioError(
            f"{name}: a sample peak of {peak:g} is beyond any PCM scale (at most {MAX_SAMPLE_PEAK:g}); "
            "pass floats in [-1, 1] or integer PCM"
        )
    return np.ascontiguousarray(resample(samples, int(rate)))


def load_item(source: Source, fs: int = SAMPLE_RATE) -> AudioItem:
    """Decode one source; a bad one becomes an item with ``error`` set."""
    try:
        return AudioItem(source.key, decode_source(source, fs), source=source.value)
    except FunASRError as e:
        return AudioItem(source.key, error=e, source=source.value)


def load_inputs(data: Any, fs: int = SAMPLE_RATE) -> list[AudioItem]:
    """Load every input of ``data`` (path, URL, list file, list, bytes, array, tensor)."""
    return [load_item(s, fs) for s in collect_sources(data)[0]]


def text_sources(data: Any) -> tuple[list[TextItem], bool]:
    """Text inputs for punctuation: a text, a list of texts, or a list file of ``key text`` lines.

    A single input that is not text (or a list file that does not exist) raises; in a list it becomes
    an item with its error.
    """
    if isinstance(data, (list, tuple)):
        items: list[TextItem] = []
        for n, d in enumerate(data):
            try:
                items.extend(text_sources(d)[0])
            except FunASRError as e:
                items.append(TextItem(f"input_{n}", "", e))
        return _distinct_keys(items), False
    if isinstance(data, Path):
        data = str(data)
    if not isinstance(data, str):
        raise AudioError(f"punctuation takes text, got {type(data).__name__}; pass a string, a list of strings or a .txt list file")
    path = Path(data) if len(data) < 4096 and "\n" not in data else None
    if path is not None and path.suffix in (".txt", ".scp", ".text"):
        if not path.is_file() and not any(c.isspace() for c in data):
            raise AudioError(f"text list file {data} does not exist; check the path (or pass the text itself)")
    if path is not None and path.suffix in (".txt", ".scp", ".text") and path.is_file():
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()
        except (OSError, UnicodeDecodeError) as e:
            raise AudioError(f"cannot read the text list file {data}: {e}") from e
        items = []
        for line in lines:
            parts = line.strip().split(maxsplit=1)
            if len(parts) == 2:
                items.append(TextItem(parts[0], parts[1]))
            elif parts:  # a line without a key is the text, keyed by its content (FunASR: a random key)
                items.append(TextItem(content_key(parts[0].encode("utf-8")), parts[0]))
        if not items:
            log.warning("the text list file %s lists no texts", data)
        return _distinct_keys(items), False
    return [TextItem(content_key(data.encode("utf-8")), data)], True


# libsndfile subtypes whose reads from any offset give exactly the samples of a full decode
_SEEKABLE_SUBTYPES = ("PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32")


@dataclass
class Recording:
    """Audio of one input: samples in memory, or a 16 kHz PCM file read piece by piece."""

    key: str
    length: int  # samples at 16 kHz
    waveform: Optional[np.ndarray] = None
    path: Optional[str] = None

    def read(self, start: int, stop: int) -> np.ndarray:
        """Samples ``start:stop`` (16 kHz, mono float32)."""
        if self.waveform is not None:
            return self.waveform[start:stop]
        samples, _ = sf.read(self.path, start=start, stop=min(stop, self.length), dtype="float32", always_2d=True)
        return np.ascontiguousarray(samples.mean(axis=1) if samples.shape[1] > 1 else samples[:, 0])

    def blocks(self, size: int) -> Iterator[tuple[np.ndarray, bool]]:
        """Consecutive pieces of ``size`` samples, each with a flag marking the last."""
        for start in range(0, self.length, size):
            yield self.read(start, start + size), start + size >= self.length


def open_recording(source: Source, fs: int = SAMPLE_RATE) -> Recording:
    """A local 16 kHz PCM file stays on disk (long recordings need no memory); anything else is decoded."""
    value = source.value
    if isinstance(value, (str, Path)) and not is_url(str(value)) and Path(value).is_file():
        info = read_header(str(value), source_name(source))
        if info is not None and info.samplerate == SAMPLE_RATE and info.frames > 0 and info.subtype in _SEEKABLE_SUBTYPES:
            warn_if_truncated(info, source_name(source))
            return Recording(source.key, int(info.frames), path=str(value))
    waveform = decode_source(source, fs)
    return Recording(source.key, len(waveform), waveform=waveform)
