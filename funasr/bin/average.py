"""The ``funasr-average`` command: average the n best checkpoints of a funasr-train output folder."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from funasr.errors import FunASRError


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``funasr-average OUTPUT_DIR N``: average the N best checkpoints of a training run into ``model.pt.avgN``."""
    p = argparse.ArgumentParser(prog="funasr-average", description="Average the N best epoch checkpoints of a "
                                "funasr-train output folder (by its validation metric) into model.pt.avgN.")
    p.add_argument("output_dir", help="the funasr-train output folder")
    p.add_argument("num", type=int, help="how many of the best checkpoints to average")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from funasr.train.checkpoint import average_nbest

        out = average_nbest(args.output_dir, args.num)
    except FunASRError as e:
        print(f"funasr-average: error: {e}", file=sys.stderr)
        return 2
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
