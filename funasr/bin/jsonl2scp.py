"""The ``jsonl2scp`` command: a FunASR jsonl data list -> Kaldi-style lists (``wav.scp``, ``text``)."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence

from funasr.bin.scp2jsonl import run


def _convert(args: argparse.Namespace) -> int:
    from funasr.data.jsonl import jsonl2scp

    return jsonl2scp(args.jsonl_file_in, args.scp_file_list, args.data_type_list)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``jsonl2scp``; returns the exit status."""
    return run("jsonl2scp", __doc__.split(": ", 1)[1], "jsonl-file-in", _convert, "wrote {n} lines from {jsonl_file_in}", argv)


if __name__ == "__main__":
    sys.exit(main())
