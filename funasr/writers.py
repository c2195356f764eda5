"""Result writers (torch-free): FunASR's Kaldi-style ``1best_recog`` files, and JSON / SRT / text per input.

``OutputWriter(output_dir, formats)`` takes result dicts one at a time (as ``generate`` returns
them) and writes

- ``<output_dir>/1best_recog/text``: ``key text`` lines (VAD: ``key [[beg_ms, end_ms], ...]``), whitespace in a key written as ``_``;
- ``<output_dir>/1best_recog/token``: ``key`` and the recognised units (CJK characters, words) of
  text without punctuation (``raw_text`` when present);
- ``<output_dir>/1best_recog/timestamp``: ``key [[beg_ms, end_ms], ...]`` for results with timestamps;
- with ``formats``: ``<output_dir>/<stem>.json``, ``<stem>.srt`` and ``<stem>.txt``, where the stem is
  the key made safe for a file name, suffixed ``_1``, ``_2``, … where two keys give one stem.

Results holding an ``error`` are skipped.
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
import unicodedata
from pathlib import Path
from types import TracebackType
from typing import Any, Callable, Iterable, Optional, TextIO, Union

from funasr.cjk import HAN_EXT_A, char_class
from funasr.errors import OptionError
from funasr.options import check_formats
from funasr.sentences import join_units

log = logging.getLogger(__name__)

KALDI_DIR = "1best_recog"
# A new subtitle starts after a pause this long when only per-unit timestamps are known.
CUE_GAP_MS = 600
CUE_MAX_UNITS = 30
# File names are at most 255 bytes: a stem this long leaves room for a ``_N`` suffix and an extension.
MAX_STEM_BYTES = 200

_CJK = char_class(HAN_EXT_A)
_UNIT = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")


def recognised_units(text: str) -> list[str]:
    """CJK characters and whitespace-separated words of ``text``, without punctuation marks."""
    return [u for u in map(_trim_punctuation, _UNIT.findall(text)) if u]


def _trim_punctuation(unit: str) -> str:
    i, j = 0, len(unit)
    while i < j and unicodedata.category(unit[i]).startswith("P"):
        i += 1
    while j > i and unicodedata.category(unit[j - 1]).startswith("P"):
        j -= 1
    return unit[i:j]


def _plain(value: Any) -> Any:
    """numpy / torch values as plain Python (for JSON)."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"cannot write a {type(value).__name__} as JSON")


def _spans(pairs: Iterable[Iterable[Any]]) -> str:
    """``[[beg, end], ...]`` with plain ints, as FunASR prints them."""
    return json.dumps([[int(b), int(e)] for b, e in pairs])


def srt_time(ms: int) -> str:
    """Milliseconds as an SRT time stamp ``HH:MM:SS,mmm``."""
    ms = max(0, int(ms))
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, ms = divmod(rest, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def srt_cues(result: dict[str, Any]) -> list[tuple[int, int, str]]:
    """(begin ms, end ms, text) subtitles: sentences, else VAD segments, else timestamp runs split at pauses."""
    if result.get("sentence_info"):
        return [(int(s["start"]), int(s["end"]), str(s.get("text", ""))) for s in result["sentence_info"]]
    if "value" in result:
        return [(int(b), int(e), f"[speech {i}]") for i, (b, e) in enumerate(result["value"], 1)]
    stamps = result.get("timestamp") or []
    if not stamps:
        return []
    units = recognised_units(result.get("raw_text") or result.get("text", ""))
    if len(units) != len(stamps):
        return [(int(stamps[0][0]), int(stamps[-1][1]), str(result.get("text", "")))]
    cues: list[tuple[int, int, str]] = []
    start = 0
    for i in range(1, len(stamps) + 1):
        if i < len(stamps) and stamps[i][0] - stamps[i - 1][1] < CUE_GAP_MS and i - start < CUE_MAX_UNITS:
            continue
        cues.append((int(stamps[start][0]), int(stamps[i - 1][1]), join_units(units[start:i])))
        start = i
    return cues


def to_srt(result: dict[str, Any]) -> str:
    """The result as SRT subtitles (empty when it has no timing)."""
    blocks = [f"{n}\n{srt_time(b)} --> {srt_time(e)}\n{text}\n" for n, (b, e, text) in enumerate(srt_cues(result), 1)]
    return "\n".join(blocks)


def to_txt(result: dict[str, Any]) -> str:
    """The result as plain text: its text, or one ``beg_ms end_ms`` line per VAD segment."""
    if "value" in result:
        return "".join(f"{int(b)} {int(e)}\n" for b, e in result["value"])
    return str(result.get("text", "")) + "\n"


def _dump(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=_plain)


def to_json(result: dict[str, Any]) -> str:
    """The result dict as JSON: one line per field, one line per sentence (UTF-8, not escaped)."""
    fields = []
    for key, value in result.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            body = "[\n" + ",\n".join(f"    {_dump(v)}" for v in value) + "\n  ]"
        else:
            body = _dump(value)
        fields.append(f"  {_dump(key)}: {body}")
    return "{\n" + ",\n".join(fields) + "\n}\n"


def file_stem(key: str) -> str:
    """A safe file name for a result key; a long one is cut to MAX_STEM_BYTES, ending in a hash of the whole key."""
    stem = re.sub(r"[^\w.\-]", "_", key).lstrip(".") or "_"
    if len(stem.encode("utf-8")) <= MAX_STEM_BYTES:
        return stem
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=4).hexdigest()
    head = stem.encode("utf-8")[: MAX_STEM_BYTES - len(digest) - 1].decode("utf-8", "ignore")
    return f"{head}_{digest}"


def kaldi_key(key: str) -> str:
    """A key as the first field of a ``1best_recog`` line: whitespace (spaces, newlines) becomes ``_``."""
    return re.sub(r"\s", "_", key) or "_"


def _unique(names: dict[str, str], key: str, name: str, blocked: Callable[[str], bool] = lambda name: False) -> str:
    """``names[key]``, set on first use to ``name``, suffixed ``_1``, ``_2``, … where another key already has it (or ``blocked``)."""
    if key not in names:
        taken, candidate, n = set(names.values()), name, 0
        while candidate in taken or blocked(candidate):
            n += 1
            candidate = f"{name}_{n}"
        names[key] = candidate
    return names[key]


def own_file(path: Path) -> Path:
    """``path``, a symbolic link there removed first: results are written into the folder, never through a link."""
    if path.is_symlink():
        path.unlink()
    return path


class OutputWriter:
    """Writes results under ``output_dir`` as they come (see the module docstring)."""

    def __init__(self, output_dir: Union[str, Path], formats: Iterable[str] = ()) -> None:
        self.output_dir = Path(output_dir)
        self.formats = check_formats(formats)
        self._files: dict[str, TextIO] = {}
        self._stems: dict[str, str] = {}  # key -> file stem, unique within the run
        self._kaldi_keys: dict[str, str] = {}  # key -> its 1best_recog field, unique within the run
        self.failed: Optional[str] = None  # why writing stopped (a full disk...); the results are still returned
        kaldi = self.output_dir / KALDI_DIR
        try:  # before any work: a file in the way fails the call now, not after the last input
            kaldi.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OptionError(f"output_dir={str(output_dir)!r}: cannot create {kaldi} ({e.strerror or e}); remove what is in the way") from e

    def __enter__(self) -> "OutputWriter":
        return self

    def __exit__(self, exc_type: Optional[type], exc: Optional[BaseException], tb: Optional[TracebackType]) -> None:
        self.close()

    def _line(self, name: str, key: str, value: str) -> None:
        if name not in self._files:
            path = self.output_dir / KALDI_DIR / name
            path.parent.mkdir(parents=True, exist_ok=True)
            self._files[name] = own_file(path).open("w", encoding="utf-8")
        fd = self._files[name]
        field = _unique(self._kaldi_keys, key, kaldi_key(key))
        fd.write(f"{field} {' '.join(value.splitlines())}\n")
        fd.flush()

    def write(self, result: dict[str, Any]) -> list[Path]:
        """Write one result; returns the per-input files written. A failed write (a full disk) is logged once and
        ends the writing (``failed`` says why), not the run: the results are still returned."""
        if "error" in result or self.failed:
            return []
        try:
            return self._write(result)
        except OSError as e:
            self.failed = f"writing under {self.output_dir} failed ({e.strerror or e}); later results were not written"
            log.error("%s (the results are still returned)", self.failed)
            return []

    def _write(self, result: dict[str, Any]) -> list[Path]:
        key = str(result.get("key", ""))
        if "value" in result:
            self._line("text", key, _spans(result["value"]))
        else:
            self._line("text", key, str(result.get("text", "")))
            self._line("token", key, " ".join(recognised_units(result.get("raw_text") or result.get("text", ""))))
            if "timestamp" in result:
                self._line("timestamp", key, _spans(result["timestamp"]))
        written = []
        for fmt in self.formats:
            if fmt == "srt" and not srt_cues(result):
                log.warning("%s has no timing (no timestamps or segments); no SRT written", key)
                continue
            path = self.output_dir / f"{self.stem(key)}.{fmt}"
            path.parent.mkdir(parents=True, exist_ok=True)
            own_file(path).write_text({"json": to_json, "srt": to_srt, "txt": to_txt}[fmt](result), encoding="utf-8")
            written.append(path)
        return written

    def stem(self, key: str) -> str:
        """The file stem of ``key``: ``file_stem(key)``, suffixed where another key of this run already has it."""
        return _unique(self._stems, key, file_stem(key), self._is_folder)

    def _is_folder(self, stem: str) -> bool:
        """Whether a folder already holds one of the file names of ``stem`` (the stem is then skipped)."""
        return any((self.output_dir / f"{stem}.{fmt}").is_dir() for fmt in self.formats)

    def close(self) -> None:
        """Close the ``1best_recog`` files."""
        for fd in self._files.values():
            try:
                fd.close()
            except OSError as e:  # what was still buffered: the writing had failed already, or fails now
                if not self.failed:
                    self.failed = f"writing under {self.output_dir} failed ({e.strerror or e}); the last lines are missing"
                    log.error("%s (the results are still returned)", self.failed)
        self._files.clear()


def write_results(results: Iterable[dict[str, Any]], output_dir: Union[str, Path], formats: Iterable[str] = ()) -> None:
    """Write a list of results (``generate(..., output_dir=...)``)."""
    with OutputWriter(output_dir, formats) as writer:
        for result in results:
            writer.write(result)
