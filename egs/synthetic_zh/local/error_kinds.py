"""What the character errors of a decoded set are: homophones, tone errors or other sounds, per kind of sentence.

    python3 error_kinds.py REF_TEXT HYP_TEXT [--out kinds.json]

Each substitution of the alignment funasr-cer scores is compared by sound (pypinyin, tone numbers): a homophone
(the same syllable and tone: only language knowledge can choose), the same syllable in another tone, or another
syllable. Keys with ``_w`` are the recipe's dictionary word sequences, the others sentences. Prints a markdown
table of percentages of the reference characters.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pypinyin import Style, lazy_pinyin

from funasr.bin.cer import alignment, normalize, units
from funasr.data.jsonl import read_kaldi_list

KINDS = ("homophone", "tone", "other", "insertion", "deletion")


def syllables(chars: list[str]) -> list[str]:
    """Toned pinyin (``zhong1``) of each character, read in context."""
    read = lazy_pinyin("".join(chars), style=Style.TONE3, neutral_tone_with_five=True)
    return read if len(read) == len(chars) else [lazy_pinyin(c, style=Style.TONE3, neutral_tone_with_five=True)[0] for c in chars]


def error_kinds(ref: list[str], hyp: list[str]) -> dict[str, int]:
    """Counts of each kind of error of ``hyp`` against ``ref`` (characters)."""
    counts = dict.fromkeys(KINDS, 0)
    ref_sound, hyp_sound = iter(syllables(ref)), iter(syllables(hyp))
    for r, h in alignment(ref, hyp):
        rs = next(ref_sound) if r is not None else None
        hs = next(hyp_sound) if h is not None else None
        if r is None:
            counts["insertion"] += 1
        elif h is None:
            counts["deletion"] += 1
        elif r != h:
            counts["homophone" if rs == hs else "tone" if rs.rstrip("12345") == hs.rstrip("12345") else "other"] += 1
    return counts


def table(refs: dict[str, str], hyps: dict[str, str]) -> dict[str, dict[str, float]]:
    """Per kind of sentence (``sentences``, ``word sequences``, ``all``): characters and each error kind in percent."""
    totals: dict[str, dict[str, int]] = {}
    for key, text in refs.items():
        ref, hyp = units(normalize(text), False), units(normalize(hyps.get(key, "")), False)
        counts = error_kinds(ref, hyp)
        for group in ("word sequences" if "_w" in key else "sentences", "all"):
            total = totals.setdefault(group, dict.fromkeys(("characters",) + KINDS, 0))
            total["characters"] += len(ref)
            for kind, n in counts.items():
                total[kind] += n
    out = {}
    for group in ("sentences", "word sequences", "all"):
        if group not in totals:
            continue
        total = totals[group]
        n = max(total["characters"], 1)
        out[group] = {"characters": total["characters"], "cer": round(100 * sum(total[k] for k in KINDS) / n, 2),
                      **{k: round(100 * total[k] / n, 2) for k in KINDS}}
    return out


def cells(row: dict[str, float]) -> str:
    """A table row's percentages as markdown cells: ``CER | homophone | tone | other | ins | del |``."""
    return " | ".join(f"{row[k]:.2f}" for k in ("cer",) + KINDS) + " |"


def main(argv=None) -> int:
    """Command line: print the table (and write it as JSON with --out)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("ref", type=Path)
    p.add_argument("hyp", type=Path)
    p.add_argument("--out", type=Path, help="write the table as JSON here too")
    args = p.parse_args(argv)
    result = table(read_kaldi_list(args.ref), read_kaldi_list(args.hyp))
    print("| characters of | count | CER % | homophone | tone | other sound | ins | del |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for group, row in result.items():
        print(f"| {group} | {row['characters']} | {cells(row)}")
    if args.out:
        args.out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
