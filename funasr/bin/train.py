"""The ``funasr-train`` command (also ``python -m funasr.bin.train``), run directly or under ``torchrun``.

    funasr-train ++model=paraformer-zh ++train_data_set_list=train.jsonl ++valid_data_set_list=val.jsonl \\
        ++dataset_conf.batch_size=6000 ++train_conf.max_epoch=10 ++optim_conf.lr=0.0002 ++output_dir=exp/ft
    torchrun --nproc_per_node 2 -m funasr.bin.train --config-path conf --config-name paraformer.yaml \\
        ++train_data_set_list=... ++tokenizer_conf.token_list=tokens.txt ++frontend_conf.cmvn_file=am.mvn ...
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional, Sequence

from funasr.errors import FunASRError

USAGE = __doc__.split("\n", 2)[2]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``funasr-train``; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: funasr-train [--config-path DIR --config-name FILE.yaml] ++key=value ...\n\n" + USAGE)
        return 0 if argv else 2
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO if rank == 0 else logging.WARNING,
                        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s")
    try:
        from funasr.train.config import load_config
        from funasr.train.run import train

        output_dir = train(load_config(argv))
    except FunASRError as e:
        print(f"funasr-train: error: {e}", file=sys.stderr)
        return 2
    if rank == 0:
        print(f"model folder: {output_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
