"""The ``funasr-token-list`` command: FunASR's character token list of transcripts."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Optional, Sequence

from funasr.errors import FunASRError


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``funasr-token-list TEXT... -o tokens.json``: the character token list of Kaldi ``text`` files or jsonl lists."""
    p = argparse.ArgumentParser(prog="funasr-token-list", description="Write FunASR's character dictionary "
                                "(<blank> <s> </s>, sorted characters, <unk>) of transcripts.")
    p.add_argument("texts", nargs="+", help="Kaldi text files ('key transcript' lines) or jsonl lists (their 'target')")
    p.add_argument("-o", "--output", default="tokens.json", help="tokens.json (a JSON list) or tokens.txt (one per line)")
    args = p.parse_args(argv)
    try:
        from funasr.data.jsonl import read_transcripts
        from funasr.train.prepare import token_list

        tokens = token_list(read_transcripts(args.texts))
    except FunASRError as e:
        print(f"funasr-token-list: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.output)
    if out.suffix == ".json":
        out.write_text(json.dumps(tokens, ensure_ascii=False, indent=0), encoding="utf-8")
    else:
        out.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(tokens)} tokens)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
