"""Token text assembly, as FunASR does it (numpy only, no torch).

:func:`sentence_postprocess` turns decoded tokens into text (CJK joining, ``@@`` pieces,
English words, single-letter abbreviations) and, given per-token timestamps, one
``[start_ms, end_ms]`` per text unit.
"""
from __future__ import annotations

from typing import Optional, Sequence

from funasr.cjk import HAN, is_cjk

SPECIAL_TOKENS = ("<s>", "</s>", "<unk>", "<OOV>")

Stamp = list  # [start_ms, end_ms]


def _is_chinese(text: str) -> bool:
    """The reference's ``isChinese``: a string compare, so multi-character tokens count too."""
    return is_cjk(text, HAN) or "0" <= text <= "9" or text == "@"


def _strip_specials(text: str) -> str:
    for special in (" ", "</s>", "<s>", "<unk>", "<OOV>"):
        text = text.replace(special, "")
    return text


def _all_chinese(items: Sequence[str]) -> bool:
    """True when every item (token, or character of a string) is Chinese-like."""
    cleaned = [_strip_specials(i) for i in items]
    return bool(cleaned) and all(_is_chinese(c) for c in cleaned)


def _all_alpha(items: Sequence[str]) -> bool:
    """True when every item (token, or character of a string) is alphabetic and not CJK, or an apostrophe."""
    cleaned = [_strip_specials(i) for i in items]
    if not cleaned:
        return False
    for c in cleaned:
        if not c.isalpha() and c != "'":
            return False
        if c.isalpha() and _is_chinese(c):
            return False
    return True


def _is_ascii_letter(word: str) -> bool:
    return len(word) == 1 and word.encode("utf-8").isalpha()


def abbr_dispose(words: list[str], stamps: Optional[list[Stamp]] = None) -> tuple[list[str], list[Stamp]]:
    """Merge runs of single letters separated by ``" "`` (``a b c``) into one upper-case word."""
    n = len(words)
    begins: list[int] = []
    ends: list[int] = []
    last = -1
    for num in range(n):
        if num <= last:
            continue
        if _is_ascii_letter(words[num]) and num + 2 < n and words[num + 1] == " " and _is_ascii_letter(words[num + 2]):
            begins.append(num)
            num += 2
            ends.append(num)
            while True:
                num += 1
                if num < n and words[num] == " ":
                    num += 1
                    if num < n and _is_ascii_letter(words[num]):
                        ends[-1] = num
                        last = num
                    else:
                        break
                else:
                    break
    stamp_index = []
    count = 0
    for word in words:
        stamp_index.append(count)
        if word != " ":
            count += 1
    out_words: list[str] = []
    out_stamps: list[Stamp] = []
    begin_set, end_set = set(begins), set(ends)
    last = -1
    for num in range(n):
        if num <= last:
            continue
        if num in begin_set:
            begin = stamps[stamp_index[num]][0] if stamps is not None and stamp_index[num] < len(stamps) else None
            abbr = words[num].upper()
            num += 1
            while num < n:
                if num in end_set:
                    abbr += words[num].upper()
                    last = num
                    break
                if words[num].encode("utf-8").isalpha():
                    abbr += words[num].upper()
                num += 1
            out_words.append(abbr)
            if stamps is not None and stamp_index[num] < len(stamps):
                out_stamps.append([begin, stamps[stamp_index[num]][1]])
        else:
            out_words.append(words[num])
            if stamps is not None and stamp_index[num] < len(stamps) and words[num] != " ":
                out_stamps.append(list(stamps[stamp_index[num]]))
    return out_words, out_stamps


def sentence_postprocess(
    tokens: Sequence[str], stamps: Optional[Sequence[Stamp]] = None
) -> tuple[str, list[Stamp], list[str]]:
    """Tokens (and optional per-token stamps) -> (text, per-unit stamps, units), as FunASR joins them.

    Without stamps CJK characters are concatenated; with stamps every unit is separated by
    one space. ``@@`` pieces are glued to the next piece; English words get spaces.
    """
    middle = [t for t in tokens if t not in SPECIAL_TOKENS]
    timed = stamps is not None
    words: list[str] = []
    out_stamps: list[Stamp] = []
    piece = ""
    if _all_chinese(middle):
        words = [t.replace(" ", "") for t in middle]
        if timed:
            out_stamps = [list(s) for s in stamps]
    elif _all_alpha(middle):
        begin = end = None
        glued = False
        for i, token in enumerate(middle):
            if timed and not glued and i < len(stamps):
                begin, end = stamps[i][0], stamps[i][1]
            if "@@" in token:
                piece += token.replace("@@", "")
                if timed:
                    glued = True
                    end = stamps[i][1] if i < len(stamps) else end
            else:
                words += [piece + token, " "]
                piece = ""
                if timed:
                    glued = False
                    end = stamps[i][1] if i < len(stamps) else end
                    out_stamps.append([begin, end])
    else:
        after_word = False
        glued = False
        begin = end = -1
        for i, token in enumerate(middle):
            if timed and not glued and i < len(stamps):
                begin, end = stamps[i][0], stamps[i][1]
            if _all_chinese(token):
                if after_word:
                    words.pop()
                words.append(token)
                after_word = False
                if timed:
                    glued = False
                    out_stamps.append([begin, end])
            elif "@@" in token:
                piece += token.replace("@@", "")
                after_word = False
                if timed:
                    glued = True
                    end = stamps[i][1] if i < len(stamps) else end
            elif _all_alpha(token):
                words += [piece + token, " "]
                piece = ""
                after_word = True
                if timed:
                    glued = False
                    end = stamps[i][1] if i < len(stamps) else end
                    out_stamps.append([begin, end])
            else:
                words.append(token)
    words, merged = abbr_dispose(words, out_stamps if timed else None)
    units = [w for w in words if w != " "]
    if timed:
        return " ".join(units).strip(), merged, units
    return "".join(words).strip(), [], units
