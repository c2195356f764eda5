"""Offline FSMN-VAD speed and memory: RTF with 1 and 2 torch threads, peak RSS vs recording length.

The recording is ``common.long_recording``: the fixture clips with low-noise gaps.  Each
configuration runs in a fresh process; memory is the process's resident set while VAD runs,
minus what it held just before (model loaded, waveform in memory), so it shows what the VAD
itself needs and whether that grows with the length of the audio.

    python benchmarks/vad.py                  # 10 min and 2.5 min; 1 and 2 threads
    python benchmarks/vad.py --minutes 10 --repeat 5
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import ROOT, best_time, long_recording, reset_peak_rss, rss_mb, table  # noqa: E402

MODEL = ROOT / "funasr" / "assets" / "fsmn-vad"


def worker(seconds: float, threads: int, repeat: int) -> dict:
    """Offline VAD on one recording in this process: best-of-``repeat`` RTF and memory while it runs."""
    import torch

    from funasr.audio import AudioItem
    from funasr.auto_model import AutoModel

    torch.set_num_threads(threads)
    wav = long_recording(seconds)
    task = AutoModel(model=str(MODEL), disable_pbar=True).task
    run = lambda: task([AudioItem("bench", wav)])  # noqa: E731
    task([AudioItem("warmup", wav[: 10 * 16000])])
    before = rss_mb("VmRSS")
    reset_peak_rss()
    segments = len(run()[0]["value"])
    peak = rss_mb("VmHWM")
    return {
        "seconds": seconds,
        "threads": threads,
        "rtf": best_time(run, repeat) / seconds,
        "segments": segments,
        "rss_before_mb": before,
        "rss_peak_mb": peak,
        "waveform_mb": wav.nbytes / 2**20,
    }


def run_worker(seconds: float, threads: int, repeat: int) -> dict:
    """``worker`` in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--worker", str(seconds), str(threads), str(repeat)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the long recording")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per configuration (best kept)")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(float(args.worker[0]), int(args.worker[1]), int(args.worker[2]))))
        return
    long_s = args.minutes * 60
    rows = [run_worker(s, t, args.repeat) for s, t in [(long_s, 1), (long_s, 2), (long_s / 4, 1)]]
    header = ["audio", "threads", "RTF", "segments", "RSS before (MiB)", "peak RSS (MiB)", "VAD working set (MiB)", "waveform (MiB)"]
    print(
        table(
            [
                [
                    f"{r['seconds'] / 60:.1f} min",
                    r["threads"],
                    f"{r['rtf']:.4f}",
                    r["segments"],
                    f"{r['rss_before_mb']:.0f}",
                    f"{r['rss_peak_mb']:.0f}",
                    f"{r['rss_peak_mb'] - r['rss_before_mb']:.1f}",
                    f"{r['waveform_mb']:.1f}",
                ]
                for r in rows
            ],
            header,
        )
    )
    long_row, short_row = rows[0], rows[2]
    growth = (long_row["rss_peak_mb"] - long_row["rss_before_mb"]) - (short_row["rss_peak_mb"] - short_row["rss_before_mb"])
    print(
        f"\nVAD working set {short_row['seconds'] / 60:.1f} min -> {long_row['seconds'] / 60:.1f} min: "
        f"{growth:+.1f} MiB (the waveform grows by {long_row['waveform_mb'] - short_row['waveform_mb']:.1f} MiB)"
    )


if __name__ == "__main__":
    main()
