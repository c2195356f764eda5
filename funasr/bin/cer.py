"""The ``funasr-cer`` command: character (and word) error rates of a hypothesis text file against a reference.

Both files hold Kaldi-style ``key text`` lines. Texts are normalised first: ``<unk>`` and other
``<tag>`` tokens and punctuation are removed, Latin letters lower-cased and whitespace collapsed.
CER counts the characters of the text without spaces; WER (printed when the references have
spaces) counts whitespace-separated words.
"""
from __future__ import annotations

import argparse
import logging
import re
import sys
import unicodedata
from dataclasses import dataclass
from typing import Optional, Sequence

from funasr.data.jsonl import read_kaldi_list
from funasr.errors import FunASRError

log = logging.getLogger("funasr.cer")

_TAG = re.compile(r"<[^<>\s]*>")


def normalize(text: str) -> str:
    """Text as scored: tags (``<unk>``) and punctuation removed, lower case, single spaces."""
    text = _TAG.sub(" ", text)
    text = "".join(" " if unicodedata.category(c).startswith("P") else c for c in text).lower()
    return " ".join(text.split())


@dataclass
class Errors:
    """Edit operations between a reference and a hypothesis, and the reference length."""

    sub: int = 0
    dele: int = 0
    ins: int = 0
    ref_len: int = 0

    @property
    def errors(self) -> int:
        return self.sub + self.dele + self.ins

    @property
    def rate(self) -> float:
        """Errors per reference unit, in percent (100 per inserted unit when the reference is empty)."""
        return 100.0 * self.errors / self.ref_len if self.ref_len else 100.0 * float(self.errors > 0)

    def __iadd__(self, other: "Errors") -> "Errors":
        self.sub, self.dele, self.ins = self.sub + other.sub, self.dele + other.dele, self.ins + other.ins
        self.ref_len += other.ref_len
        return self

    def line(self, name: str) -> str:
        """Kaldi's summary line: ``%CER 12.50 [ 3 / 24, 1 ins, 1 del, 1 sub ]``."""
        return f"%{name} {self.rate:.2f} [ {self.errors} / {self.ref_len}, {self.ins} ins, {self.dele} del, {self.sub} sub ]"


def alignment(ref: Sequence[str], hyp: Sequence[str]) -> list[tuple[Optional[str], Optional[str]]]:
    """A Levenshtein alignment of ``hyp`` against ``ref``: (ref unit, hyp unit) pairs, None for the missing side of a
    deletion or insertion; among equally short ones a substitution is preferred, then a deletion."""
    # step[i][j]: 0 diagonal (match or substitution), 1 up (deletion), 2 left (insertion) into cell (i, j)
    prev = list(range(len(hyp) + 1))
    step = [bytearray([2]) * (len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        cur, moves = [i], bytearray([1]) * (len(hyp) + 1)
        for j in range(1, len(hyp) + 1):
            costs = (prev[j - 1] + (ref[i - 1] != hyp[j - 1]), prev[j] + 1, cur[j - 1] + 1)
            best = min(costs)
            moves[j] = costs.index(best)
            cur.append(best)
        prev = cur
        step.append(moves)
    pairs: list[tuple[Optional[str], Optional[str]]] = []
    i, j = len(ref), len(hyp)
    while i or j:
        move = step[i][j]
        pairs.append((ref[i - 1] if move != 2 else None, hyp[j - 1] if move != 1 else None))
        i, j = i - (move != 2), j - (move != 1)
    return pairs[::-1]


def align(ref: Sequence[str], hyp: Sequence[str]) -> Errors:
    """Levenshtein alignment counts (substitutions, deletions, insertions) of ``hyp`` against ``ref``."""
    pairs = alignment(ref, hyp)
    return Errors(sum(r is not None and h is not None and r != h for r, h in pairs), sum(h is None for _, h in pairs),
                  sum(r is None for r, _ in pairs), len(ref))


def units(text: str, words: bool) -> list[str]:
    """Scoring units of a normalised text: words, or characters without spaces."""
    return text.split() if words else [c for c in text if c != " "]


def score(refs: dict[str, str], hyps: dict[str, str]) -> tuple[Errors, Errors, list[tuple[str, Errors, str, str]]]:
    """Total CER and WER counts over the reference keys (a key missing from ``hyps`` scores as all deleted), and per-key CER."""
    cer, wer, details = Errors(), Errors(), []
    for key, ref_text in refs.items():
        ref, hyp = normalize(ref_text), normalize(hyps.get(key, ""))
        errors = align(units(ref, False), units(hyp, False))
        cer += errors
        wer += align(units(ref, True), units(hyp, True))
        details.append((key, errors, ref, hyp))
    return cer, wer, details


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``funasr-cer``; returns the exit status."""
    p = argparse.ArgumentParser(prog="funasr-cer", description=__doc__.split("\n\n")[0].split(": ", 1)[1])
    p.add_argument("ref", help="reference text file (key text lines)")
    p.add_argument("hyp", help="hypothesis text file (key text lines), e.g. 1best_recog/text")
    p.add_argument("--details", action="store_true", help="also print each utterance's errors, reference and hypothesis")
    args = p.parse_args(argv)
    try:
        refs, hyps = read_kaldi_list(args.ref), read_kaldi_list(args.hyp)
    except FunASRError as e:
        print(f"funasr-cer: {e}", file=sys.stderr)
        return 1
    missing = [k for k in refs if k not in hyps]
    extra = [k for k in hyps if k not in refs]
    cer, wer, details = score(refs, hyps)
    if args.details:
        for key, e, ref, hyp in details:
            print(f"{key} {e.line('CER')[1:]}\n  ref: {ref}\n  hyp: {hyp}")
    print(cer.line("CER"))
    if any(" " in normalize(t) for t in refs.values()):
        print(wer.line("WER"))
    print(f"utterances: {len(refs)}, missing from the hypothesis: {len(missing)}, not in the reference (ignored): {len(extra)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
