"""FunASR's jsonl data lists: ``wav.scp`` + ``text`` <-> jsonl, lengths, and a compact byte-offset index (torch-free).

A line is ``{"key", "source", "source_len", "target", "target_len"}``: ``source_len`` is the audio
length in 10 ms units at 16 kHz, ``target_len`` the number of words when the text has a space,
else of characters.
"""
from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

import numpy as np

from funasr.audio import SAMPLE_RATE, Source, decode_source, read_header
from funasr.errors import FunASRError, OptionError

log = logging.getLogger(__name__)

SAMPLES_PER_UNIT = SAMPLE_RATE // 100  # one source_len unit: 10 ms at 16 kHz


def samples_to_source_len(samples: int) -> int:
    """``source_len`` of ``samples`` 16 kHz samples: whole 10 ms units."""
    return int(samples) // SAMPLES_PER_UNIT


def audio_samples(path: str) -> int:
    """Samples of an audio file once decoded at 16 kHz, from its header (a full decode where no header says)."""
    info = read_header(path, path) if Path(path).is_file() else None
    if info is None or info.frames <= 0:
        return len(decode_source(Source(Path(path).stem, path)))
    if info.samplerate == SAMPLE_RATE:
        return int(info.frames)
    return int(info.frames * SAMPLE_RATE / info.samplerate + 0.5)  # soxr's output length


def text_length(text: str) -> int:
    """``target_len``: words if the text has a space, else characters."""
    return len(text.split()) if " " in text else len(text)


def read_kaldi_list(path: Union[str, Path]) -> dict[str, str]:
    """``key value`` lines of a Kaldi-style list (``wav.scp``, ``text``); a line with only a key has value ``""``."""
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise OptionError(f"cannot read the list file {path}: {e}") from e
    out: dict[str, str] = {}
    for line in lines:
        parts = line.strip().split(maxsplit=1)
        if parts:
            out[parts[0]] = parts[1].strip() if len(parts) > 1 else ""
    return out


def read_transcripts(paths: Sequence[Union[str, Path]]) -> list[str]:
    """The transcripts of Kaldi ``text`` files ('key transcript' lines) and jsonl lists (their ``target``)."""
    texts: list[str] = []
    for path in paths:
        if str(path).endswith((".jsonl", ".json")):
            texts += [str(e.get("target", "")) for _, e, err in iter_jsonl(str(path)) if not err]
        else:
            texts += list(read_kaldi_list(path).values())
    return texts


def scp2jsonl(scp_files: Sequence[str], data_types: Sequence[str], jsonl_out: str, threads: int = 16) -> int:
    """Join Kaldi-style lists into a jsonl list (keys of the first list, in its order); returns the lines written.

    A ``source`` value is an audio path whose ``source_len`` is measured (headers read by ``threads``
    threads); other types get ``<type>_len`` = text_length. A missing or unreadable audio file, or a
    key absent from another list, is warned about and left out.
    """
    if len(scp_files) != len(data_types):
        raise OptionError(
            f"scp_file_list has {len(scp_files)} files but data_type_list has {len(data_types)} types "
            f"({list(data_types)}); give one type per file, e.g. ['source', 'target']"
        )
    lists = [read_kaldi_list(f) for f in scp_files]
    sources = sorted({v for t, values in zip(data_types, lists) if t == "source" for v in values.values()})
    with ThreadPoolExecutor(max(1, threads)) as pool:
        measured = dict(zip(sources, pool.map(_measure, sources)))
    written = 0
    with open(jsonl_out, "w", encoding="utf-8") as out:
        for key in lists[0]:
            line: dict[str, Any] = {"key": key}
            for data_type, values, path in zip(data_types, lists, scp_files):
                if key not in values:
                    log.warning("%s: key %s is not in %s; left out", jsonl_out, key, path)
                    break
                value = values[key]
                length = measured[value] if data_type == "source" else text_length(value)
                if isinstance(length, str):
                    log.warning("%s: key %s: cannot read the audio %s (%s); left out", jsonl_out, key, value, length)
                    break
                line[data_type] = value
                line[f"{data_type}_len"] = length
            else:
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
                written += 1
    return written


def _measure(path: str) -> Union[int, str]:
    """``source_len`` of an audio file, or why it cannot be read."""
    try:
        return samples_to_source_len(audio_samples(path))
    except (FunASRError, OSError) as e:
        return str(e)


def jsonl2scp(jsonl_in: str, scp_files: Sequence[str], data_types: Sequence[str]) -> int:
    """Write the ``data_types`` fields of a jsonl list as Kaldi-style ``key value`` lists; returns the lines read."""
    if len(scp_files) != len(data_types):
        raise OptionError(
            f"scp_file_list has {len(scp_files)} files but data_type_list has {len(data_types)} types; give one file per type"
        )
    outs = [open(f, "w", encoding="utf-8") for f in scp_files]
    n = 0
    try:
        for lineno, entry, error in iter_jsonl(jsonl_in):
            if error:
                log.warning("%s line %d: %s; left out", jsonl_in, lineno, error)
                continue
            for data_type, out in zip(data_types, outs):
                out.write(f"{entry['key']} {entry.get(data_type, '')}\n")
            n += 1
    finally:
        for out in outs:
            out.close()
    return n


def iter_jsonl(path: str) -> Iterator[tuple[int, Optional[dict], Optional[str]]]:
    """(line number, object, error) for each non-blank line; a line that is not a JSON object with a key gives an error."""
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            if raw.strip():
                entry, error = parse_line(raw)
                yield lineno, entry, error


def parse_line(raw: bytes) -> tuple[Optional[dict], Optional[str]]:
    """One jsonl line as an object, or why it is not one."""
    try:
        entry = json.loads(raw)
    except ValueError as e:
        return None, f"not JSON ({e})"
    if not isinstance(entry, dict) or not isinstance(entry.get("key", ""), str):
        return None, "not a JSON object with a string 'key'"
    return entry, None


@dataclass
class Rejected:
    """A jsonl line left out of an index: where it is and why."""

    path: str
    lineno: int
    key: str
    reason: str  # a short code: see ``BAD_DATA``
    message: str


@dataclass
class JsonlIndex:
    """The usable lines of jsonl lists as numpy arrays: file, byte offset, line number, source_len, target_len.

    The text stays on disk; ``entry(i)`` reads line ``i`` again, so worker processes share a few
    bytes per utterance instead of a parsed copy of the list.
    """

    paths: list[str]
    file: np.ndarray  # (N,) int32: index into ``paths``
    offset: np.ndarray  # (N,) int64: byte offset of the line
    lineno: np.ndarray  # (N,) int32: 1-based line number
    source_len: np.ndarray  # (N,) int32
    target_len: np.ndarray  # (N,) int32
    rejected: list[Rejected] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offset)

    def entry(self, i: int) -> dict:
        """The parsed jsonl object of line ``i``."""
        with open(self.paths[self.file[i]], "rb") as f:
            f.seek(int(self.offset[i]))
            return json.loads(f.readline())

    def where(self, i: int) -> str:
        """``path line N`` of entry ``i``, for messages."""
        return f"{self.paths[self.file[i]]} line {int(self.lineno[i])}"


def build_index(
    paths: Sequence[str],
    check: Callable[[dict, str, int, int], Optional[tuple[str, str]]],
) -> JsonlIndex:
    """Index the lines of ``paths`` that parse and pass ``check(entry, path, source_len, target_len)``.

    ``check`` returns ``(reason, message)`` to leave a line out; such lines are listed in ``rejected``.
    """
    cols: dict[str, list[int]] = {"file": [], "offset": [], "lineno": [], "source_len": [], "target_len": []}
    rejected: list[Rejected] = []
    for file_no, path in enumerate(paths):
        try:
            f = open(path, "rb")
        except OSError as e:
            raise OptionError(f"cannot read the data list {path}: {e}; pass an existing jsonl file") from e
        with f:
            offset = 0
            for lineno, raw in enumerate(f, 1):
                start, offset = offset, offset + len(raw)
                if not raw.strip():
                    continue
                entry, error = parse_line(raw)
                lengths = _lengths(entry, path) if entry is not None else None
                if error:
                    problem: Optional[tuple[str, str]] = ("bad_json", error)
                elif lengths is None:
                    problem = ("bad_json", "source_len/target_len are not numbers")
                else:
                    problem = check(entry, path, *lengths)
                if problem:
                    if entry is None:
                        problem = (problem[0], f"{problem[1]}: {raw[:60].decode('utf-8', 'replace').strip()!r}")
                    rejected.append(Rejected(path, lineno, str(entry.get("key", "")) if entry else "", *problem))
                    continue
                cols["file"].append(file_no)
                cols["offset"].append(start)
                cols["lineno"].append(lineno)
                cols["source_len"].append(lengths[0])
                cols["target_len"].append(lengths[1])
    return JsonlIndex(
        list(paths),
        np.array(cols["file"], dtype=np.int32),
        np.array(cols["offset"], dtype=np.int64),
        np.array(cols["lineno"], dtype=np.int32),
        np.array(cols["source_len"], dtype=np.int32),
        np.array(cols["target_len"], dtype=np.int32),
        rejected,
    )


def resolve_source(source: str, list_path: str) -> str:
    """An audio path of a list, taken from the working folder as FunASR does, else from the list's folder."""
    if os.path.isabs(source) or os.path.exists(source):
        return source
    beside = os.path.join(os.path.dirname(list_path), source)
    return beside if os.path.exists(beside) else source


def _lengths(entry: dict, path: str) -> Optional[tuple[int, int]]:
    """(source_len, target_len) of a jsonl object, None if not numbers; where absent, measured (audio header, text)."""
    source, target = entry.get("source"), entry.get("target")
    try:
        target_len = int(entry.get("target_len", text_length(target) if isinstance(target, str) else 0))
        if "source_len" in entry:
            return int(entry["source_len"]), target_len
    except (TypeError, ValueError):
        return None
    try:
        return samples_to_source_len(audio_samples(resolve_source(source, path))), target_len
    except (FunASRError, OSError, TypeError):  # no readable audio: the dataset's checks report it
        return 1, target_len


def list_files(data_list: Union[str, Sequence[str]]) -> list[str]:
    """The jsonl files of ``train_data_set_list``: a ``.jsonl``/``.json`` file, a text file naming one per line, or a list."""
    if not isinstance(data_list, str):
        return [str(p) for p in data_list]
    if data_list.endswith((".jsonl", ".json")):
        return [data_list]
    try:
        lines = Path(data_list).read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise OptionError(f"cannot read the data list {data_list}: {e}; pass a .jsonl file or a file listing them") from e
    return [line.strip() for line in lines if line.strip()]

