"""Punctuation precision, recall and F1 (，。？ and their micro average) of a model on punctuated text.

    python3 punc_f1.py MODEL_DIR heldout.txt [--init-param CHECKPOINT] [--out scores.json]

Each line's punctuation is removed, the model punctuates the plain text, and the class after every word is
compared with the reference (the model's ``punc_array``: one class per word as its text rules cut them; the
forced final mark counts too).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from funasr import AutoModel
from funasr.data.punc import MARK_CLASS, label_words

PUNC_LIST = ["<unk>", "_", "，", "。", "？", "、"]
SCORED = ("，", "。", "？")


def scores(pairs: list[tuple[list[int], list[int]]]) -> dict[str, dict[str, float]]:
    """Per-mark and micro-averaged precision/recall/F1 over (reference, hypothesis) label lists."""
    counts = {m: [0, 0, 0] for m in SCORED}  # true positives, hypothesised, referenced
    for ref, hyp in pairs:
        for r, h in zip(ref, hyp):
            rm, hm = PUNC_LIST[r], PUNC_LIST[h]
            if hm in counts:
                counts[hm][1] += 1
            if rm in counts:
                counts[rm][2] += 1
                counts[rm][0] += rm == hm
    counts["micro"] = [sum(c[i] for c in counts.values()) for i in range(3)]
    out = {}
    for mark, (tp, hyp, ref) in counts.items():
        p, r = tp / max(hyp, 1), tp / max(ref, 1)
        out[mark] = {"precision": p, "recall": r, "f1": 2 * p * r / max(p + r, 1e-9), "count": ref}
    return out


def main() -> int:
    """Score the model on the text file; print a table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("text")
    ap.add_argument("--init-param", help="a checkpoint other than MODEL/model.pt (e.g. model.pt.avg3)")
    ap.add_argument("--out")
    args = ap.parse_args()
    extra = {"init_param": args.init_param} if args.init_param else {}
    model = AutoModel(model=args.model, disable_update=True, **extra)
    pairs = []
    for line in Path(args.text).read_text(encoding="utf-8").splitlines():
        words, ref = label_words(line, PUNC_LIST)
        if not words:
            continue
        plain = "".join(c for c in line if c not in MARK_CLASS)
        hyp = [int(c) for c in model.generate(input=plain)[0]["punc_array"]]
        if len(hyp) != len(ref):
            print(f"skipped ({len(hyp)} labels for {len(ref)} words): {line}", file=sys.stderr)
            continue
        pairs.append((ref, hyp))
    table = scores(pairs)
    print(f"{len(pairs)} texts")
    print("| mark | precision | recall | F1 | count |\n| --- | --- | --- | --- | --- |")
    for mark, s in table.items():
        print(f"| {mark} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['count']} |")
    if args.out:
        Path(args.out).write_text(json.dumps(table, ensure_ascii=False, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
