"""funasr-batch scaling: throughput (x real time) with 1 and 2 worker processes, beside a bare loop over the same files.

The files are ``--files`` recordings of 5-30 s cut from the fixture clips (with gaps). The model
is a random-weight Paraformer-large (see benchmarks/asr.py) unless ``--model`` names another
folder. Each worker loads the model once and runs ``--cpus-per-worker`` threads; the figures
include loading (what a user waits for). The bare loop is one process, one ``AutoModel``,
``generate`` per file with the same threads, no JSONL: the overhead of the pool is the
difference at one worker.

    python benchmarks/batch.py
    python benchmarks/batch.py --files 20 --model tests/fixtures/parity/models/paraformer_tiny
"""
from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import long_recording, table  # noqa: E402


def make_files(folder: Path, n: int, seed: int = 0) -> float:
    """``n`` recordings of 5-30 s in ``folder``; their total seconds."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    total = 0.0
    for i in range(n):
        seconds = float(rng.uniform(5, 30))
        sf.write(folder / f"rec{i:04d}.wav", long_recording(seconds, seed=seed + i), 16000)
        total += seconds
    return total


def bare_loop(model_dir: str, folder: Path, threads: int) -> float:
    """Seconds to load one model and transcribe every file with it in this process."""
    from funasr.auto_model import AutoModel

    start = time.monotonic()
    model = AutoModel(model=model_dir, ncpu=threads, device="cpu", disable_pbar=True)
    for path in sorted(folder.glob("*.wav")):
        model.generate(input=str(path))
    return time.monotonic() - start


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--backend", default="auto", choices=["auto", "ray", "local"])
    parser.add_argument("--model", help="model folder (default: a random-weight Paraformer-large)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/funasr-bench"))
    args = parser.parse_args()

    from funasr.batch import transcribe_batch

    if args.model is None:
        from asr import build_model

        args.model = str(build_model(args.work / "paraformer-large-random"))
    folder = args.work / f"batch-{args.files}"
    audio_s = make_files(folder, args.files)
    rows = []
    bare = bare_loop(args.model, folder, args.cpus_per_worker)
    rows.append(["bare loop (1 process)", f"{bare:.1f}", f"{audio_s / bare:.1f}", "-"])
    one = None
    for workers in args.workers:
        out = args.work / f"batch-out-{workers}"
        shutil.rmtree(out, ignore_errors=True)
        summary = transcribe_batch(folder, out, args.model, workers=workers, cpus_per_worker=args.cpus_per_worker, device="cpu", backend=args.backend, progress=False)
        one = one or summary.wall_s * workers
        efficiency = one / (summary.wall_s * workers)
        rows.append([f"funasr-batch, {workers} worker(s)", f"{summary.wall_s:.1f}", f"{audio_s / summary.wall_s:.1f}", f"{efficiency:.0%}"])
    print(f"{args.files} files, {audio_s / 60:.1f} min of audio, {args.cpus_per_worker} thread(s) per worker")
    print(table(rows, ["run", "wall s", "x real time", "scaling efficiency"]))


if __name__ == "__main__":
    main()
