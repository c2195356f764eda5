"""funasr-batch scaling: throughput (x real time) with 1 and 2 workers (Ray Data actors and local processes), beside a bare loop.

The files are ``--files`` recordings of 5-30 s cut from the fixture clips (with gaps). The model
is a random-weight Paraformer-large (see benchmarks/asr.py) unless ``--model`` names another
folder. Each worker loads the model once and runs ``--cpus-per-worker`` threads; the figures
include loading (what a user waits for), not ``ray.init`` (printed apart). The bare loop is one
process, one ``AutoModel``, ``generate`` per file with the same threads, no JSONL: the overhead of
Ray (or of the local pool) is the difference at one worker. Scaling efficiency: the 1-worker time
over (N x the N-worker time). With ``--address auto`` the same script runs on a cluster unchanged.

    python benchmarks/batch.py
    python benchmarks/batch.py --files 20 --model tests/fixtures/parity/models/paraformer_tiny
    python benchmarks/batch.py --address auto --workers 8 16 --backends ray     # on a Ray cluster's head node
"""
from __future__ import annotations

import argparse
import os
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


def load() -> str:
    """The 1-minute load average, as ``uptime`` prints it."""
    return f"{os.getloadavg()[0]:.1f}"


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--cpus-per-worker", type=int, default=1)
    parser.add_argument("--backends", nargs="+", default=["ray", "local"], choices=["ray", "local"])
    parser.add_argument("--address", help="a Ray cluster (auto or ray://head:10001); default: a local Ray instance")
    parser.add_argument("--model", help="model folder (default: a random-weight Paraformer-large)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/funasr-bench"))
    args = parser.parse_args()

    from funasr.batch import ray_available, transcribe_batch

    if args.model is None:
        from asr import build_model

        args.model = str(build_model(args.work / "paraformer-large-random"))
    folder = args.work / f"batch-{args.files}"
    audio_s = make_files(folder, args.files)
    backends = [b for b in args.backends if b == "local" or ray_available()]
    ray_start = None
    if "ray" in backends:
        import ray

        start = time.monotonic()
        local = {} if args.address else {"num_cpus": max(args.workers) * args.cpus_per_worker}
        ray.init(address=args.address, include_dashboard=False, log_to_driver=False, **local)
        ray_start = time.monotonic() - start
    rows = []
    bare = bare_loop(args.model, folder, args.cpus_per_worker)
    rows.append(["bare loop (1 process, 1 model)", "-", f"{bare:.1f}", f"{audio_s / bare:.1f}", "-", load()])
    for backend in backends:
        one = None
        for workers in args.workers:
            out = args.work / f"batch-out-{backend}-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            summary = transcribe_batch(folder, out, args.model, workers=workers, cpus_per_worker=args.cpus_per_worker, device="cpu",
                                       backend=backend, address=args.address, progress=False)
            one = one or summary.wall_s * workers
            rows.append([f"funasr-batch --backend {backend}", str(workers), f"{summary.wall_s:.1f}", f"{audio_s / summary.wall_s:.1f}",
                         f"{one / (summary.wall_s * workers):.0%}", load()])
    print(f"{args.files} files, {audio_s / 60:.1f} min of audio, {args.cpus_per_worker} thread(s) per worker, {os.cpu_count()} CPUs")
    if ray_start is not None:
        print(f"ray.init (not in the table): {ray_start:.1f} s")
    print(table(rows, ["run", "workers", "wall s", "x real time", "scaling efficiency", "load (1 min)"]))


if __name__ == "__main__":
    main()
