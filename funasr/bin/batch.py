"""``funasr-batch INPUT OUTPUT``: transcribe a folder or manifest of files with worker processes into a resumable JSONL."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

from funasr.engines import ENGINES
from funasr.errors import FunASRError


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments of funasr-batch."""
    p = argparse.ArgumentParser(
        prog="funasr-batch",
        description="Transcribe many files with worker processes (each loads the model once). Results are appended to "
        "OUTPUT/results.jsonl as they finish; rerunning the command skips the files already done and redoes the failed ones.",
    )
    p.add_argument("input", metavar="INPUT", help="folder (searched recursively), wav.scp, FunASR .jsonl or text list of files")
    p.add_argument("output", metavar="OUTPUT", help="output folder (results.jsonl, and --format files)")
    p.add_argument("--model", required=True, help="ASR model: name, hub id or local folder (an exported folder with --engine onnx)")
    p.add_argument("--vad-model", help="voice activity detector, to split long files (e.g. fsmn-vad)")
    p.add_argument("--punc-model", help="punctuation model (e.g. ct-punc)")
    p.add_argument("--engine", default="torch", choices=ENGINES, help="PyTorch or onnxruntime (default: torch)")
    p.add_argument("--hotword", help='hotwords for SeACo / contextual models: "word1 word2" or a .txt file')
    p.add_argument("--format", default="jsonl", help="comma-separated outputs: jsonl (always), txt, srt, json (per file)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--cpus-per-worker", type=int, default=1, help="threads (and Ray CPUs) of each worker (default: 1)")
    p.add_argument("--gpus-per-worker", type=float, default=0, help="Ray GPUs of each worker (default: 0)")
    p.add_argument("--backend", default="auto", choices=["auto", "ray", "local"],
                   help="Ray actors or local processes (default: Ray when installed)")
    p.add_argument("--address", help="a Ray cluster: auto or ray://host:10001 (default: a local Ray instance)")
    p.add_argument("--device", help="cpu, cuda, cuda:1, ... for every worker")
    p.add_argument("--hub", default="hf", choices=["hf", "ms"], help="where model names are downloaded from (default: hf)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar and no warnings")
    return p.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of ``funasr-batch``; exit status 0 when every file was transcribed, 1 otherwise."""
    args = parse_args(argv)
    logging.basicConfig(level=logging.ERROR if args.quiet else logging.WARNING, format="funasr-batch: %(levelname)s: %(message)s")
    from funasr.batch import transcribe_batch

    try:
        summary = transcribe_batch(
            args.input, args.output, args.model, args.vad_model, args.punc_model, args.engine, args.hotword, args.format,
            args.workers, args.cpus_per_worker, args.gpus_per_worker, args.device, args.hub, args.backend, args.address,
            progress=not args.quiet,
        )
    except FunASRError as e:
        print(f"funasr-batch: error: {e}", file=sys.stderr)
        return 1
    print(
        f"funasr-batch: {summary.total} files: {summary.transcribed} transcribed, {summary.skipped} already done, "
        f"{summary.failed} failed ({summary.audio_s:.1f} s of audio in {summary.wall_s:.1f} s)",
        file=sys.stderr,
    )
    return 1 if summary.failed else 0


if __name__ == "__main__":
    sys.exit(main())
