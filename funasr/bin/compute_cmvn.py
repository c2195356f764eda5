"""The ``funasr-compute-cmvn`` command: the am.mvn (Kaldi CMVN) of a training list, over a config's frontend."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

from funasr.errors import FunASRError


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``funasr-compute-cmvn CONFIG JSONL... -o am.mvn``: CMVN over the frontend of CONFIG (a config.yaml or model folder)."""
    p = argparse.ArgumentParser(prog="funasr-compute-cmvn", description="Compute the am.mvn (Kaldi CMVN) of the "
                                "frontend a config names (fbank + LFR, before CMVN) over the audio of jsonl lists.")
    p.add_argument("config", help="config.yaml (or a model folder holding one) naming frontend and frontend_conf")
    p.add_argument("jsonl", nargs="+", help="jsonl data lists (scp2jsonl makes them)")
    p.add_argument("-o", "--output", default="am.mvn", help="where to write (default: am.mvn)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from funasr.train.config import read_yaml
        from funasr.train.prepare import compute_cmvn, write_am_mvn

        path = Path(args.config)
        cfg = read_yaml(path / "config.yaml" if path.is_dir() else path)
        if not cfg.get("frontend"):
            raise FunASRError(f"{args.config} names no frontend")
        shift, scale = compute_cmvn(args.jsonl, cfg["frontend"], dict(cfg.get("frontend_conf") or {}))
        write_am_mvn(args.output, shift, scale)
    except FunASRError as e:
        print(f"funasr-compute-cmvn: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({len(shift)} dimensions)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
