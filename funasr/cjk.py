"""Which text counts as CJK: one test, over the code point ranges the reference uses in different places.

The ranges differ on purpose (each reproduces the reference's output where it is used), so
every caller names its range; :func:`is_cjk` compares strings, so a multi-character token
counts when it sorts inside the range (as the reference's ``isChinese`` on tokens).
"""
from __future__ import annotations

Span = tuple[str, str]  # first and last code point, inclusive

HAN: Span = ("\u4e00", "\u9fff")  # CJK Unified Ideographs: token text assembly
HAN_EXT_A: Span = ("\u3400", "\u9fff")  # with Extension A: joining segment texts, result units
HAN_GB: Span = ("\u4e00", "\u9fa5")  # the ideographs up to U+9FA5: hotword words split per character
FROM_THAI_TO_HAN_GB: Span = ("\u0e00", "\u9fa5")  # the reference's range for punctuation labels per character


def is_cjk(text: str, span: Span = HAN) -> bool:
    """Whether ``text`` sorts within ``span`` (for one character: its code point lies in the range)."""
    return span[0] <= text <= span[1]


def char_class(span: Span) -> str:
    """``span`` as the inside of a regular expression character class (``a-b``)."""
    return f"{span[0]}-{span[1]}"
