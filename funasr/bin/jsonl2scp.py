"""The ``jsonl2scp`` command: a FunASR jsonl data list -> Kaldi-style lists (``wav.scp``, ``text``)."""
from __future__ import annotations

import logging
import sys
from typing import Optional, Sequence

from funasr.bin.scp2jsonl import parse, parser
from funasr.errors import FunASRError


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``jsonl2scp``; returns the exit status."""
    args = parse(parser("jsonl2scp", __doc__.split(": ", 1)[1], "jsonl-file-in"), argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from funasr.data.jsonl import jsonl2scp

    try:
        n = jsonl2scp(args.jsonl_file_in, args.scp_file_list, args.data_type_list)
    except (FunASRError, OSError) as e:
        print(f"jsonl2scp: {e}", file=sys.stderr)
        return 1
    print(f"wrote {n} lines to {', '.join(args.scp_file_list)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
