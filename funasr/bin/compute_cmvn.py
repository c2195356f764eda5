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
    p.add_argument("config", help="config.yaml naming frontend and frontend_conf, or a model folder (FunASR or WeNet)")
    p.add_argument("jsonl", nargs="+", help="jsonl data lists (scp2jsonl makes them)")
    p.add_argument("-o", "--output", default="am.mvn", help="where to write (default: am.mvn)")
    p.add_argument("--format", choices=("kaldi", "wenet"), default="kaldi",
                   help="kaldi: FunASR's am.mvn (default); wenet: WeNet's JSON global_cmvn (for U2 folders)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        from funasr.config import resolve_model_dir
        from funasr.train.config import read_yaml
        from funasr.train.prepare import compute_cmvn, write_am_mvn, write_global_cmvn

        path = Path(args.config)
        cfg = resolve_model_dir(path) if path.is_dir() else read_yaml(path)
        if not cfg.get("frontend"):
            raise FunASRError(f"{args.config} names no frontend")
        shift, scale = compute_cmvn(args.jsonl, cfg["frontend"], dict(cfg.get("frontend_conf") or {}))
        (write_global_cmvn if args.format == "wenet" else write_am_mvn)(args.output, shift, scale)
    except FunASRError as e:
        print(f"funasr-compute-cmvn: error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.output} ({len(shift)} dimensions)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
