"""Paraformer-large speed on CPU: RTF of one 8 s utterance, batched throughput, peak memory, compute floor.

The model is built from the released Paraformer-large config (220 M parameters, vocab 8404)
with random weights. Random CIF weights would fire about every other frame (~8 tokens/s),
so the predictor's output layer is set to give ~4 tokens per second, the rate of real
Mandarin speech; everything else stays random. Each thread count runs in a fresh process.

- RTF: one 8 s utterance (best of ``--repeat``), 1 and 2 torch threads.
- Throughput: ``--minutes`` of speech cut into 2-20 s segments (as a VAD gives them),
  recognised with ``batch_size`` 1, 4 and 8; RTF = wall time / audio time.
- Peak memory: the process's peak resident set while recognising, and its growth over the
  resident set with the model loaded.
- Compute floor: the FLOPs torch counts for the 8 s utterance divided by the GEMM speed this
  machine reaches at the same thread count (a (T, 512) x (512, 2048) matmul).

    python benchmarks/asr.py
    python benchmarks/asr.py --threads 1 --minutes 1 --repeat 1
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import yaml  # noqa: E402

from common import (  # noqa: E402
    SPEC_CONFIGS,
    best_time,
    long_recording,
    random_model_dir,
    reset_peak_rss,
    rss_mb,
    side_by_side,
    table,
)

REFERENCE_RTF = {1: 0.097, 2: 0.059}  # FunASR 1.4.16, Paraformer-large, one 8 s utterance, CPU
TOKENS_PER_SECOND = 4.0
LFR_FRAMES_PER_SECOND = 100 / 6


def build_model(out: Path) -> Path:
    """Random-weight Paraformer-large folder whose CIF fires at a speech-like rate (cached in ``out``)."""
    import torch

    if (out / "model.pt").is_file():
        return out
    random_model_dir(SPEC_CONFIGS / "paraformer.config.yaml", out, vocab_size=8404)
    config = yaml.safe_load((out / "config.yaml").read_text())
    config["frontend_conf"]["dither"] = 0.0  # the reference dithers by default (we never do): equal inputs
    (out / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True))
    state = torch.load(out / "model.pt", weights_only=True)
    alpha = TOKENS_PER_SECOND / LFR_FRAMES_PER_SECOND
    state["predictor.cif_output.weight"].mul_(0.01)
    state["predictor.cif_output.bias"].fill_(float(torch.logit(torch.tensor(alpha))))
    torch.save(state, out / "model.pt")
    return out


def segments(minutes: float, seed: int = 0) -> list:
    """``minutes`` of speech cut into 2-20 s pieces."""
    import numpy as np

    from funasr.audio import AudioItem

    wav = long_recording(minutes * 60, seed=seed)
    rng = np.random.default_rng(seed)
    items, start = [], 0
    while start < len(wav):
        n = int(rng.uniform(2, 20) * 16000)
        items.append(AudioItem(f"seg{len(items)}", wav[start : start + n]))
        start += n
    return items


def gemm_gflops(rows: int) -> float:
    """GFLOP/s of a (rows, 512) x (512, 2048) float32 matmul at the current thread count."""
    import torch

    a, w = torch.randn(rows, 512), torch.randn(2048, 512)
    seconds = best_time(lambda: [torch.nn.functional.linear(a, w) for _ in range(20)], 3) / 20
    return 2 * rows * 512 * 2048 / seconds / 1e9


def worker(model_dir: str, threads: int, minutes: float, repeat: int) -> dict:
    """All measurements at one thread count, in this process."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from funasr.audio import AudioItem
    from funasr.auto_model import build_task

    torch.set_num_threads(threads)
    task = build_task(model_dir, device="cpu")
    utterance = [AudioItem("utt", long_recording(8.0, seed=1))]
    feats, _ = task.frontend([utterance[0].waveform])
    peak_gemm = gemm_gflops(feats.shape[1])
    rtf = best_time(lambda: task(utterance), repeat) / 8.0
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        task(utterance)

    items = sorted(segments(minutes), key=lambda i: len(i.waveform))  # length-sorted, as the pipeline batches
    audio_s = sum(len(i.waveform) for i in items) / 16000
    loaded = rss_mb("VmRSS")
    batches = {}
    for batch_size in (1, 4, 8):
        reset_peak_rss()
        start = time.perf_counter()
        for i in range(0, len(items), batch_size):
            task(items[i : i + batch_size])
        batches[batch_size] = {"rtf": (time.perf_counter() - start) / audio_s, "peak_mb": rss_mb("VmHWM")}
    return {
        "threads": threads,
        "params_m": sum(p.numel() for p in task.net.module.parameters()) / 1e6,
        "rtf": rtf,
        "gflop_per_audio_s": counter.get_total_flops() / 1e9 / 8.0,
        "gemm_gflops": peak_gemm,
        "segments": len(items),
        "audio_s": audio_s,
        "rss_loaded_mb": loaded,
        "batches": batches,
    }


def run_worker(model_dir: Path, threads: int, minutes: float, repeat: int) -> dict:
    """``worker`` in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--worker", str(model_dir), str(threads), str(minutes), str(repeat)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--minutes", type=float, default=5.0, help="speech for the batched throughput run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the 8 s utterance (best kept)")
    parser.add_argument("--model-dir", type=Path, default=Path("/tmp/funasr-bench/paraformer-large-random"))
    parser.add_argument("--reference-python", help="interpreter with FunASR 1.4.16 installed: adds a side-by-side table")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model_dir, threads, minutes, repeat = args.worker
        print(json.dumps(worker(model_dir, int(threads), float(minutes), int(repeat))))
        return
    model_dir = build_model(args.model_dir)
    results = [run_worker(model_dir, t, args.minutes, args.repeat) for t in args.threads]
    r0 = results[0]
    print(f"Paraformer-large, random weights ({r0['params_m']:.1f} M parameters), CPU, float32")
    print(f"compute: {r0['gflop_per_audio_s']:.2f} GFLOP per second of audio (torch FlopCounterMode)\n")
    rows = []
    for r in results:
        floor = r["gflop_per_audio_s"] / r["gemm_gflops"]
        ref = REFERENCE_RTF.get(r["threads"])
        rows.append(
            [
                r["threads"],
                f"{r['rtf']:.4f}",
                f"{ref:.3f}" if ref else "-",
                f"{ref / r['rtf']:.2f}x" if ref else "-",
                f"{r['gemm_gflops']:.0f}",
                f"{floor:.4f}",
                f"{r['rtf'] / floor:.2f}x",
            ]
        )
    print("One 8 s utterance:")
    print(table(rows, ["threads", "RTF", "reference RTF", "speed-up", "GEMM GFLOP/s", "floor RTF", "RTF / floor"]))
    rows = []
    for r in results:
        for batch_size, b in r["batches"].items():
            rows.append(
                [
                    r["threads"],
                    batch_size,
                    f"{b['rtf']:.4f}",
                    f"{1 / b['rtf']:.0f}x",
                    f"{b['peak_mb']:.0f}",
                    f"{b['peak_mb'] - r['rss_loaded_mb']:.0f}",
                ]
            )
    print(f"\n{r0['audio_s'] / 60:.1f} min of speech in {r0['segments']} segments of 2-20 s:")
    print(table(rows, ["threads", "batch_size", "RTF", "x real time", "peak RSS MiB", "over loaded model MiB"]))
    if args.reference_python:
        print("\nSide by side with FunASR 1.4.16, AutoModel.generate on an 8 s wav file (best of --repeat):")
        print(compare_with_reference(model_dir, args.reference_python, args.threads, args.repeat))


def compare_with_reference(model_dir: Path, reference_python: str, threads: list[int], repeat: int) -> str:
    """RTF of both toolkits on the same 8 s file and model, and whether their texts agree."""
    import soundfile as sf

    wav = model_dir.parent / "utterance_8s.wav"
    sf.write(wav, long_recording(8.0, seed=1), 16000)
    rows = []
    for t in threads:
        ours = side_by_side(sys.executable, True, "asr", model_dir, wav, t, repeat)
        ref = side_by_side(reference_python, False, "asr", model_dir, wav, t, repeat)
        rows.append([t, f"{ours['wall'] / 8:.4f}", f"{ref['wall'] / 8:.4f}", f"{ref['wall'] / ours['wall']:.2f}x",
                     "yes" if ours["text"].replace(" ", "") == ref["text"].replace(" ", "") else "NO"])
    return table(rows, ["threads", "funasr RTF", "FunASR 1.4.16 RTF", "speed-up", "same text"])


if __name__ == "__main__":
    main()
