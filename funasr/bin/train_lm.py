"""The ``funasr-train-lm`` command: an n-gram LM (ARPA) over a model's tokens, for ``lm_file=`` shallow fusion."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from funasr.errors import FunASRError


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``funasr-train-lm TEXT... -o lm.arpa [--order 4] [--prune 0 1 1] [--seg-dict FILE]``: a modified Kneser-Ney n-gram LM."""
    p = argparse.ArgumentParser(prog="funasr-train-lm", description="Estimate an interpolated modified Kneser-Ney "
                                "n-gram LM over ASR tokens (characters; seg_dict pieces for words in it) and write ARPA.")
    p.add_argument("texts", nargs="+", help="Kaldi text files ('key transcript' lines) or jsonl lists (their 'target')")
    p.add_argument("-o", "--output", default="lm.arpa", help="the ARPA file to write (.gz: gzip-compressed)")
    p.add_argument("--order", type=int, default=4, help="n-gram order (default 4)")
    p.add_argument("--prune", type=int, nargs="*", default=[], metavar="N",
                   help="per order from 2: drop the n-grams counted at most N times (e.g. --prune 0 1 1; default: keep all)")
    p.add_argument("--seg-dict", help="the model's seg_dict, when it has one (words -> BPE pieces, as the model tokenises)")
    args = p.parse_args(argv)
    try:
        from funasr.data.jsonl import read_transcripts
        from funasr.tokenizer import CharTokenizer
        from funasr.train.ngram import train_arpa

        if args.seg_dict and not Path(args.seg_dict).is_file():
            raise FunASRError(f"--seg-dict {args.seg_dict!r} is not a file; pass the model's seg_dict or leave it out")
        tokenizer = CharTokenizer(token_list=[], seg_dict=args.seg_dict)
        sentences = [tokenizer.text2tokens(t) for t in read_transcripts(args.texts)]
        out = train_arpa([s for s in sentences if s], args.order, args.output, args.prune)
    except FunASRError as e:
        print(f"funasr-train-lm: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({len(sentences)} sentences, order {args.order})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
