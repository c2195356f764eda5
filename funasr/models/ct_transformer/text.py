"""CT-Transformer text rules (torch-free): words, windows, punctuated text and ``punc_array``.

The network only labels each word with a class of ``punc_list``
(``["<unk>", "_", "，", "。", "？", "、"]``). Everything around it follows FunASR:

- :func:`split_words` cuts text into the model's words (characters, or jieba words when the
  model ships a ``jieba_usr_dict``);
- :func:`punctuate_words` runs the model over windows of ``split_size`` words, carrying the
  words after the last sentence end into the next window;
- :func:`assemble` joins the emitted windows into text (English spacing, capitals, the final
  full stop) and :func:`expand_to_chars` spreads word labels over characters for jieba models.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generator, Optional, Sequence, Union

import numpy as np

from funasr.cjk import FROM_THAI_TO_HAN_GB, is_cjk

NO_PUNC = "_"
SENTENCE_ENDS = ("。", "？")
# Full-width marks written after an ASCII word in their ASCII form ("、" and "<unk>" stay as they are).
ASCII_FORM = {"，": ",", "。": ".", "？": "?"}
# Past this many words in one window without a sentence end, the window is cut at its last comma.
CACHE_POP_TRIGGER_LIMIT = 200

_ENGLISH_WORD = re.compile(r"[a-zA-Z']+")


def is_ascii_start(word: str) -> bool:
    """True when ``word`` starts with an ASCII character (FunASR's test for an English word)."""
    return len(word[0].encode()) == 1


def is_english(word: str) -> bool:
    """True for a word of ASCII letters and apostrophes only."""
    return _ENGLISH_WORD.fullmatch(word) is not None


def load_jieba(user_dict: Union[str, Path]) -> Any:
    """A jieba tokenizer with jieba's default dictionary plus ``user_dict`` (own instance, not jieba's global one)."""
    import jieba

    logging.getLogger("jieba").setLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    tokenizer.load_userdict(str(user_dict))
    return tokenizer


def _split_chars(piece: str) -> list[str]:
    # Every non-ASCII character is a word; runs of ASCII characters form one word.
    words: list[str] = []
    run = ""
    for ch in piece:
        if len(ch.encode()) == 1:
            run += ch
            continue
        if run:
            words.append(run)
            run = ""
        words.append(ch)
    if run:
        words.append(run)
    return words


def split_words(text: str, jieba_tokenizer: Any = None) -> list[str]:
    """The model's words of ``text``: characters and ASCII runs, or jieba words when a tokenizer is given."""
    pieces = text.split()
    if jieba_tokenizer is None:
        return [w for piece in pieces for w in _split_chars(piece)]
    # Runs of English pieces stay word by word; each run of other pieces is glued and cut by jieba.
    words: list[str] = []
    start = 0
    for end in range(1, len(pieces) + 1):
        if end < len(pieces) and is_english(pieces[end]) == is_english(pieces[start]):
            continue
        run = pieces[start:end]
        if is_english(run[0]):
            words.extend(run)
        else:
            words.extend(jieba_tokenizer.cut("".join(run), HMM=False))
        start = end
    return words


@dataclass
class Window:
    """Words emitted together and their punctuation class ids."""

    words: list[str]
    puncs: list[int]


def punctuate_words(
    words: Sequence[str],
    ids: Sequence[int],
    predict: Callable[[np.ndarray], np.ndarray],
    punc_list: Sequence[str],
    split_size: int = 20,
    sentence_end_id: int = 3,
) -> list[Window]:
    """Label ``words`` window by window; ``predict`` maps token ids (L,) to class ids (L,)."""
    steps = label_windows(words, ids, punc_list, split_size, sentence_end_id)
    return run_windows([steps], lambda which, windows: [predict(windows[0])])[0]


WindowSteps = Generator[np.ndarray, np.ndarray, list[Window]]


def label_windows(
    words: Sequence[str], ids: Sequence[int], punc_list: Sequence[str], split_size: int = 20, sentence_end_id: int = 3
) -> WindowSteps:
    """:func:`punctuate_words` step by step: yields each window's token ids (L,), is sent their class ids (L,), returns the windows.

    Each window holds ``split_size`` new words after the words carried from the window before
    (those after its last sentence end), so several texts can be labelled side by side, their
    windows batched (see :func:`run_windows`).
    """
    if split_size < 1:
        raise ValueError(f"split_size must be at least 1, got {split_size}")
    n = len(words)
    bounds = list(range(0, n, split_size))
    windows: list[Window] = []
    carry_words: list[str] = []
    carry_ids: list[int] = []
    for k, start in enumerate(bounds):
        win_words = carry_words + list(words[start : start + split_size])
        win_ids = carry_ids + [int(i) for i in ids[start : start + split_size]]
        puncs = [int(p) for p in (yield np.asarray(win_ids, dtype=np.int64))]
        if k == len(bounds) - 1:
            windows.append(Window(win_words, puncs))
            break
        cut = _sentence_cut(puncs, punc_list, len(win_words) > CACHE_POP_TRIGGER_LIMIT)
        if cut is not None and punc_list[puncs[cut]] == "，":
            puncs[cut] = sentence_end_id  # a window too long without a sentence end is cut at a comma
        end = -1 if cut is None else cut
        carry_words, carry_ids = win_words[end + 1 :], win_ids[end + 1 :]
        windows.append(Window(win_words[: end + 1], puncs[: end + 1]))
    return windows


def run_windows(
    steps: Sequence[WindowSteps], predict_batch: Callable[[list[int], list[np.ndarray]], list[np.ndarray]]
) -> list[list[Window]]:
    """Drive several :func:`label_windows` side by side; the windows of each.

    Each round the next window of every unfinished text goes to ``predict_batch(which, windows)``
    (``which``: the texts' positions in ``steps``; ``windows``: their token ids (L_i,)), which
    returns the class ids (L_i,) of each.
    """
    done: dict[int, list[Window]] = {}
    todo: dict[int, np.ndarray] = {}

    def advance(i: int, classes: Optional[np.ndarray]) -> None:
        try:
            todo[i] = next(steps[i]) if classes is None else steps[i].send(classes)
        except StopIteration as end:
            todo.pop(i, None)
            done[i] = end.value

    for i in range(len(steps)):
        advance(i, None)
    while todo:
        which = list(todo)
        for i, classes in zip(which, predict_batch(which, [todo[i] for i in which])):
            advance(i, classes)
    return [done[i] for i in range(len(steps))]


def _sentence_cut(puncs: list[int], punc_list: Sequence[str], too_long: bool) -> Optional[int]:
    # The last sentence end at index len-2 down to 2, else (in a too long window) the last comma.
    last_comma = None
    for i in range(len(puncs) - 2, 1, -1):
        mark = punc_list[puncs[i]]
        if mark in SENTENCE_ENDS:
            return i
        if last_comma is None and mark == "，":
            last_comma = i
    return last_comma if too_long else None


def assemble(windows: Sequence[Window], punc_list: Sequence[str], sentence_end_id: int = 3) -> tuple[str, list[int]]:
    """Punctuated text and per-word class ids of the emitted ``windows`` (FunASR's spacing and end rules)."""
    parts: list[str] = []
    punc_array: list[int] = []
    for window in windows:
        for i, (word, punc) in enumerate(zip(window.words, window.puncs)):
            ascii_word = is_ascii_start(word)
            if ascii_word and (i == 0 or punc_list[window.puncs[i - 1]] in SENTENCE_ENDS):
                word = word.capitalize()
            if ascii_word and (i == 0 or is_ascii_start(window.words[i - 1])):
                word = " " + word
            parts.append(word)
            mark = punc_list[punc]
            if mark != NO_PUNC:
                parts.append(ASCII_FORM.get(mark, mark) if ascii_word else mark)
        punc_array.extend(window.puncs)
    text = "".join(parts)
    if not text:
        return text, punc_array
    last = text[-1]
    if last in ("，", "、"):
        text = text[:-1] + "。"
    elif last == ",":
        text = text[:-1] + "."
    elif len(last.encode()) > 1 and last not in SENTENCE_ENDS:
        text += "。"
    elif len(last.encode()) == 1 and last not in (".", "?"):
        text += "."
    else:
        return text, punc_array
    punc_array[-1] = sentence_end_id
    return text, punc_array


def expand_to_chars(words: Sequence[str], punc_array: Sequence[int]) -> list[int]:
    """Spread word labels over characters: a CJK word of n characters gets n-1 ``_`` then its label."""
    out: list[int] = []
    for word, punc in zip(words, punc_array):
        if is_cjk(word[0], FROM_THAI_TO_HAN_GB):
            out.extend([1] * (len(word) - 1))
        out.append(int(punc))
    return out
