"""The ``scp2jsonl`` command: Kaldi-style lists (``wav.scp``, ``text``) -> a FunASR jsonl data list."""
from __future__ import annotations

import argparse
import ast
import logging
import sys
from typing import Callable, Optional, Sequence

from funasr.bin.export import from_hydra_style
from funasr.errors import FunASRError

EXAMPLES = """\
examples:
  {prog} ++scp_file_list='["wav.scp","text.txt"]' ++data_type_list='["source","target"]' ++{option}=train.jsonl
  {prog} --scp-file-list wav.scp text.txt --{dashed} train.jsonl
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
    p = argparse.ArgumentParser(prog=prog, description=description, epilog=EXAMPLES.format(prog=prog, option=jsonl_option.replace("-", "_"), dashed=jsonl_option),
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


def run(prog: str, description: str, jsonl_option: str, convert: Callable[[argparse.Namespace], int], done: str,
        argv: Optional[Sequence[str]]) -> int:
    """Parse the arguments, run ``convert`` (which returns a line count), report; returns the exit status."""
    args = parse(parser(prog, description, jsonl_option), argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        n = convert(args)
    except (FunASRError, OSError) as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 1
    print(done.format(n=n, **vars(args)))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from funasr.data.jsonl import scp2jsonl

    return scp2jsonl(args.scp_file_list, args.data_type_list, args.jsonl_file_out)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``scp2jsonl``; returns the exit status."""
    return run("scp2jsonl", __doc__.split(": ", 1)[1], "jsonl-file-out", _convert, "wrote {n} lines to {jsonl_file_out}", argv)


if __name__ == "__main__":
    sys.exit(main())
