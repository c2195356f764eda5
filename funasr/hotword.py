"""Hotword lists for SeACo and Contextual Paraformer (numpy-free, torch-free).

``hotword=`` is a whitespace-separated string (each piece one hotword), a path to a
``.txt`` file (one hotword per line) or an http(s) URL of such a file. Each hotword is
tokenised with the model's ``seg_dict`` when it has one, and the list ends with the
sentinel hotword ``[sos]``, as FunASR builds it.
"""
from __future__ import annotations

import os
import re
from typing import Optional, Protocol, Sequence, Union

from funasr.cjk import HAN_GB, char_class
from funasr.errors import HotwordError
from funasr.hub import fetch_url, is_url

_HAN_OR_DIGITS = re.compile(rf"^[{char_class(HAN_GB)}0-9]+$")


class Tokenizer(Protocol):
    """What hotword tokenisation needs from :class:`funasr.tokenizer.CharTokenizer`."""

    seg_dict: Optional[dict[str, list[str]]]

    def tokens2ids(self, tokens: Sequence[str]) -> list[int]: ...


def _read_url(url: str) -> str:
    data = fetch_url(url, "hotword list", HotwordError)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise HotwordError(f"the hotword list {url} is not UTF-8 text: {e}; it must hold one hotword per line") from e


def _read_file(path: str) -> str:
    if not os.path.isfile(path):
        raise HotwordError(f"hotword file {path} does not exist; pass an existing .txt file (one hotword per line) or a space-separated string")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise HotwordError(f"cannot read hotword file {path}: {e}; it must be UTF-8 text, one hotword per line") from e


def check_hotword(hotword: object) -> None:
    """Raise HotwordError unless ``hotword`` is None, a string or a list/tuple of strings."""
    if hotword is None or isinstance(hotword, str):
        return
    if not isinstance(hotword, (list, tuple)) or not all(isinstance(h, str) for h in hotword):
        raise HotwordError(
            f"hotword={hotword!r:.100} is not text: pass a string of space-separated hotwords, a list of strings, "
            "a .txt file (one hotword per line) or its URL"
        )


def read_hotwords(hotword: Union[str, Sequence[str], None]) -> Optional[list[str]]:
    """The hotwords (each a phrase of space-separated words) named by ``hotword``; None when not given.

    A URL or a ``.txt`` path is read one hotword per line (blank lines skipped); any other
    string is split on whitespace. An empty result is an empty list.
    """
    check_hotword(hotword)
    if hotword is None:
        return None
    if not isinstance(hotword, str):
        return [h.strip() for h in hotword if h.strip()]
    if is_url(hotword):
        text = _read_url(hotword)
    elif hotword.endswith(".txt"):
        text = _read_file(hotword)
    else:
        return hotword.split()
    return [line.strip() for line in text.splitlines() if line.strip()]


def seg_tokenize(words: Sequence[str], seg_dict: dict[str, list[str]]) -> list[str]:
    """Pieces of ``words`` by ``seg_dict`` (lower-cased); CJK/digit words per character; else ``<unk>``."""
    pieces: list[str] = []
    for word in words:
        word = word.lower()
        if word in seg_dict:
            pieces += seg_dict[word]
        elif _HAN_OR_DIGITS.match(word):
            for char in word:
                pieces += seg_dict.get(char, ["<unk>"])
        else:
            pieces.append("<unk>")
    return pieces


def hotword_ids(hotwords: Sequence[str], tokenizer: Tokenizer, sos: int = 1) -> list[list[int]]:
    """Token ids of each hotword phrase, then the sentinel ``[sos]``; phrases that tokenise to nothing are skipped."""
    out: list[list[int]] = []
    for phrase in hotwords:
        words = phrase.split()
        pieces = seg_tokenize(words, tokenizer.seg_dict) if tokenizer.seg_dict is not None else words
        ids = tokenizer.tokens2ids(pieces)
        if ids:
            out.append(ids)
    out.append([sos])
    return out
