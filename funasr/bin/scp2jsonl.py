"""The ``scp2jsonl`` command: Kaldi-style lists (``wav.scp``, ``text``) -> a FunASR jsonl data list."""
from __future__ import annotations

import argparse
import ast
import logging
import sys
from typing import Optional, Sequence

from funasr.bin.export import from_hydra_style
from funasr.errors import FunASRError

EXAMPLES = """\
examples:
  scp2jsonl ++scp_file_list='["wav.scp","text.txt"]' ++data_type_list='["source","target"]' ++jsonl_file_out=train.jsonl
  scp2jsonl --scp-file-list wav.scp text.txt --jsonl-file-out train.jsonl
"""


def list_arg(values: Sequence[str]) -> list[str]:
    """A list option given as separate words or as one Python/JSON list literal (``'["a","b"]'``)."""
    if len(values) == 1 and values[0].strip().startswith(("[", "(")):
        try:
            parsed = ast.literal_eval(values[0].strip())
        except (ValueError, SyntaxError) as e:
            raise argparse.ArgumentTypeError(f"{values[0]!r} is not a list literal such as '[\"wav.scp\",\"text.txt\"]' ({e})")
        return [str(v) for v in parsed]
    return [str(v) for v in values]


def parser(prog: str, description: str, jsonl_option: str) -> argparse.ArgumentParser:
    """The options both conversion commands take."""
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=EXAMPLES.replace("scp2jsonl", prog),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scp-file-list", nargs="+", required=True, help="the Kaldi-style lists, e.g. wav.scp text.txt")
    p.add_argument("--data-type-list", nargs="+", default=["source", "target"],
                   help="the jsonl field of each list (default: source target)")
    p.add_argument(f"--{jsonl_option}", required=True, help="the jsonl file")
    return p


def parse(p: argparse.ArgumentParser, argv: Optional[Sequence[str]]) -> argparse.Namespace:
    """Parse ``--key value`` or FunASR's ``++key=value`` arguments, list options as words or list literals."""
    args = p.parse_args(from_hydra_style(list(sys.argv[1:] if argv is None else argv)))
    try:
        args.scp_file_list, args.data_type_list = list_arg(args.scp_file_list), list_arg(args.data_type_list)
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``scp2jsonl``; returns the exit status."""
    args = parse(parser("scp2jsonl", __doc__.split(": ", 1)[1], "jsonl-file-out"), argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from funasr.data.jsonl import scp2jsonl

    try:
        n = scp2jsonl(args.scp_file_list, args.data_type_list, args.jsonl_file_out)
    except FunASRError as e:
        print(f"scp2jsonl: {e}", file=sys.stderr)
        return 1
    print(f"wrote {n} lines to {args.jsonl_file_out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
