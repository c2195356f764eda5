"""Segment text joining and sentence-level timestamps (torch-free)."""
from __future__ import annotations

import re
from typing import Iterable, Optional

from funasr.cjk import HAN_EXT_A, is_cjk

PUNC_MARKS = ("，", "。", "？", "、")  # punc ids 2..5
_TAG = re.compile(r"<\|[^|]*\|>")


def join_units(units: Iterable[str]) -> str:
    """Join pieces of text: nothing between two CJK neighbours, one space elsewhere."""
    out = ""
    for unit in units:
        if out and not (is_cjk(out[-1], HAN_EXT_A) and is_cjk(unit[0], HAN_EXT_A)):
            out += " "
        out += unit
    return out


def join_vad_texts(texts: list[str]) -> str:
    """Join segment texts for punctuation (``<|tag|>`` markers and blank segments dropped)."""
    return join_units(t for t in (_TAG.sub("", t).strip() for t in texts) if t)


def _starts_ascii_letter(word: str) -> bool:
    return bool(word) and word[0].isascii() and word[0].isalpha()


MARKS = frozenset(PUNC_MARKS) | frozenset(",.?!")  # what a punctuation model inserts (CJK and Latin marks)


def punctuate_segments(texts: list[str], punctuated: str) -> Optional[list[str]]:
    """Each segment's text as it reads in ``punctuated`` (their join with marks inserted), None if it does not fit."""
    out, pos = [], 0
    for segment in texts:
        piece = ""
        for ch in _TAG.sub("", segment):
            if ch.isspace():
                continue
            while pos < len(punctuated) and punctuated[pos].isspace():
                pos += 1
                piece += " " if piece else ""
            if pos >= len(punctuated) or punctuated[pos].lower() != ch.lower():
                return None
            piece += punctuated[pos]
            pos += 1
            while pos < len(punctuated) and punctuated[pos] in MARKS:
                piece += punctuated[pos]
                pos += 1
        out.append(piece)
    return out if all(c.isspace() or c in MARKS for c in punctuated[pos:]) else None


def sentences_from_punctuation(
    punc_array: list[int], timestamps: list[list[int]], units: list[str], return_raw_text: bool = False
) -> list[dict]:
    """Split aligned units (one per timestamp and punctuation id) into sentences at each punctuation mark."""
    out: list[dict] = []
    text, raw, stamps = "", "", []
    for punc, stamp, unit in zip(punc_array, timestamps, units):
        after_word = bool(text) and text[-1].isascii() and text[-1].isalpha()
        text += (" " if _starts_ascii_letter(unit) or after_word else "") + unit
        raw += unit
        stamps.append(list(stamp))
        if punc > 1:
            sentence = {"text": text + PUNC_MARKS[punc - 2], "start": stamps[0][0], "end": stamps[-1][1], "timestamp": stamps}
            if return_raw_text:
                sentence["raw_text"] = raw
            out.append(sentence)
            text, raw, stamps = "", "", []
    if stamps:  # words after the last mark form a last sentence (the reference drops them)
        sentence = {"text": text, "start": stamps[0][0], "end": stamps[-1][1], "timestamp": stamps}
        if return_raw_text:
            sentence["raw_text"] = raw
        out.append(sentence)
    return out


def sentences_from_segments(
    segments: list[list[int]], texts: list[str], timestamps: Optional[list[list[list[int]]]] = None
) -> list[dict]:
    """One sentence per VAD segment (when punctuation and timestamps cannot be aligned)."""
    out = []
    for i, ((start, end), text) in enumerate(zip(segments, texts)):
        text = text.strip()
        if text:
            stamps = timestamps[i] if timestamps else []
            out.append({"text": text, "sentence": text, "start": start, "end": end, "timestamp": stamps})
    return out
