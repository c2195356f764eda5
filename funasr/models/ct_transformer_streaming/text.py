"""Realtime punctuation call rules (torch-free): what one call punctuates, what it returns, what it carries on.

FunASR's ``CTTransformerStreaming`` keeps ``pre_text``, the words after the last sentence end,
and punctuates ``"".join(pre_text) + " " + piece`` on every call, in windows of ``split_size``
words (:func:`funasr.models.ct_transformer.text.label_windows`), the model told how many words
were carried (its VAD index). The returned text leaves the carried words out but keeps the mark
after the last of them, and drops a trailing mark (the next call decides it).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from funasr.models.ct_transformer.text import NO_PUNC, SENTENCE_ENDS, Window, is_ascii_start, split_words


@dataclass
class CallResult:
    """One call's output and the words it carries to the next (None: keep the carried words as they were)."""

    text: str
    punc_array: list[int]  # class ids of the last window, carried words included
    pre_text: Optional[list[str]]


def call_words(pre_text: Sequence[str], piece: str) -> list[str]:
    """The words one call punctuates: the carried words, then the new piece's."""
    return split_words("".join(pre_text) + " " + piece)


def assemble_call(words_carried: int, windows: Sequence[Window], punc_list: Sequence[str]) -> CallResult:
    """Text, ``punc_array`` and the next carried words of a call over ``windows`` that began with ``words_carried`` old words.

    Where FunASR raises (a call of one word in all, or nothing to return) the result is what
    its rules give, and the carried words stay as they were.
    """
    words = [w for window in windows for w in window.words]
    marks = [punc_list[p] for window in windows for p in window.puncs]
    punc_array = list(windows[-1].puncs) if windows else []
    parts: list[str] = []
    for i, (word, mark) in enumerate(zip(words, marks)):
        if i > 0 and is_ascii_start(word) and len(words[i - 1][-1].encode()) == 1:
            words[i] = word = " " + word  # carried on with its space, as FunASR's pre_text holds it
        if i >= words_carried:
            parts.append(word)
        if i + 1 >= words_carried and mark != NO_PUNC:
            parts.append(mark)
    text = "".join(parts)
    if not text:
        return CallResult(text, punc_array, None)
    if text[-1] in punc_list:
        text = text[:-1]
    if len(words) < 2:
        return CallResult(text, punc_array, None)
    end = next((i for i in range(len(marks) - 2, 1, -1) if marks[i] in SENTENCE_ENDS), -1)
    return CallResult(text, punc_array, words[end + 1 :])


def pad_batch(windows: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Token id windows -> (ids (B, L) int64 zero-padded, lengths (B,) int64)."""
    lens = np.array([len(w) for w in windows], dtype=np.int64)
    ids = np.zeros((len(windows), int(lens.max())), dtype=np.int64)
    for i, w in enumerate(windows):
        ids[i, : len(w)] = w
    return ids, lens


def attention_masks(length: int, vad_indexes: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The exported graph's ``vad_masks`` and ``sub_masks`` (causal), float32 (B, 1, length, length).

    VAD mask: all ones except rows < index-1 at columns >= index.
    """
    pos = np.arange(length)
    idx = np.asarray(vad_indexes, dtype=np.int64)[:, None, None, None]
    vad = ~((pos[:, None] < idx - 1) & (pos[None, :] >= idx))
    causal = np.tile(np.tril(np.ones((length, length), dtype=np.float32)), (len(idx), 1, 1, 1))
    return vad.astype(np.float32), causal
