"""Streaming Paraformer latency: per-chunk compute time and concurrent real-time streams.

A Paraformer-large-size streaming model (the released ``paraformer-zh-streaming`` layout: 50
encoder blocks of 512, 16 decoder blocks, 8404 tokens) with random weights is built once
under ``--work`` and exported to ONNX (fp32 and int8). Each configuration runs in a fresh
process with its thread count:

- per-chunk latency: one stream fed chunk by chunk (``decode_streams``), p50/p95 of the time per
  600 ms (``[0, 10, 5]``) and 480 ms (``[0, 8, 4]``) chunk, PyTorch / ONNX fp32 / ONNX int8,
  1 and 2 threads;
- concurrency: N streams decoded together per chunk round (one batched forward per round);
  the largest N whose p95 round time stays within the chunk's duration is the number of
  real-time streams the machine sustains.

Every engine decodes with look-back 4 / 1 (the model's defaults; on ONNX through the look-back
graphs ``model_look_back`` / ``decoder_look_back``).

    python benchmarks/streaming.py                       # everything (several minutes)
    python benchmarks/streaming.py --quick               # a smoke run of the script (tiny test model)
    python benchmarks/streaming.py --reference-python /path/to/funasr-env/bin/python   # + FunASR's own generate
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import FIXTURES, ROOT, long_recording, random_model_dir, side_by_side, table  # noqa: E402

TINY_CONFIG = FIXTURES / "parity" / "models" / "paraformer_streaming_tiny" / "config.yaml"
CHUNKS = {"600ms": [0, 10, 5], "480ms": [0, 8, 4]}
ENGINES = ("torch", "onnx", "onnx-int8")
LOOK_BACK = (4, 1)  # encoder / decoder chunk look-back: the model's defaults


def streaming_config(out: Path, width: int = 512, ff: int = 2048, blocks: int = 50, decoder_blocks: int = 16) -> Path:
    """A streaming config (the tiny fixture's layout, widened): by default the released size."""
    cfg = yaml.safe_load(TINY_CONFIG.read_text())
    cfg["encoder_conf"].update(output_size=width, attention_heads=4, linear_units=ff, num_blocks=blocks)
    cfg["decoder_conf"].update(attention_heads=4, linear_units=ff, num_blocks=decoder_blocks, att_layer_num=decoder_blocks)
    cfg["predictor_conf"]["idim"] = width
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return out


def prepare(work: Path, quick: bool) -> Path:
    """The model folder (random weights at the released size; the tiny test model for ``quick``) and its ONNX export."""
    model = work / "model"
    if quick:
        model = TINY_CONFIG.parent
    elif not (model / "model.pt").is_file():
        random_model_dir(streaming_config(work / "config.yaml"), model, vocab_size=8404)
    onnx_dir = work / "onnx"
    if not (onnx_dir / "decoder_look_back_quant.onnx").is_file():
        from funasr.auto_model import AutoModel

        AutoModel(model=str(model), device="cpu", disable_pbar=True).export(type="onnx", quantize=True, output_dir=str(onnx_dir))
    return model


def load_task(work: Path, model: Path, engine: str, threads: int):
    """The streaming task on ``engine`` with ``threads`` threads."""
    if engine == "torch":
        import torch

        from funasr.auto_model import AutoModel

        torch.set_num_threads(threads)
        return AutoModel(model=str(model), device="cpu", disable_pbar=True).task
    sys.path.insert(0, str(ROOT / "runtime" / "python"))
    import funasr_onnx

    return funasr_onnx.AutoModel(
        model=str(work / "onnx"), quantize=engine == "onnx-int8",
        intra_op_num_threads=threads, disable_pbar=True,
    ).task


def measure(task, size: list[int], streams: int, seconds: float) -> dict:
    """``streams`` streams (each at its own offset in the recording) decoded together, chunk by chunk: round times."""
    audio = long_recording(seconds + streams * 2.0)
    stride = size[1] * 960
    group = [task.create_stream(size, *LOOK_BACK) for _ in range(streams)]
    warm = task.create_stream(size, *LOOK_BACK)
    warm.accept_waveform(audio[: 3 * stride])
    task.decode_streams([warm])
    times = []
    for k in range(int(seconds * 16000) // stride):
        for j, s in enumerate(group):
            start = j * 2 * 16000 + k * stride
            s.accept_waveform(audio[start : start + stride])
        t = time.perf_counter()
        task.decode_streams(group)
        times.append(time.perf_counter() - t)
    ms = np.array(times) * 1000
    return {"streams": streams, "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)), "chunk_ms": size[1] * 60}


def worker(work: Path, model: Path, engine: str, threads: int, seconds: float, sweep: bool, quick: bool) -> dict:
    """One engine at ``threads`` threads, loaded once: one stream per chunk size, then (``sweep``) more and more
    streams of 600 ms chunks until a round takes longer than the chunk's duration."""
    task = load_task(work, model, engine, threads)
    chunks = {k: v for k, v in CHUNKS.items() if not quick or k == "600ms"}
    out = {"single": {name: measure(task, size, 1, seconds) for name, size in chunks.items()}, "sweep": []}
    for n in ((1, 2) if quick else (1, 2, 4, 8, 12, 16, 24, 32)) if sweep else ():
        r = measure(task, CHUNKS["600ms"], n, seconds)
        out["sweep"].append(r)
        if r["p95_ms"] > r["chunk_ms"]:
            break
    return out


def run_worker(work: Path, model: Path, *args: object) -> dict:
    """``worker`` in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--work", str(work), "--worker", str(model), *map(str, args)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/funasr-bench-streaming"), help="model and export folder")
    parser.add_argument("--seconds", type=float, default=30.0, help="audio per stream")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (the last one: concurrency, side by side)")
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run of this script: the tiny test model, 6 s, 1 thread, 600 ms, up to 2 streams")
    parser.add_argument("--reference-python", help="interpreter with FunASR 1.4.16 installed: adds a side-by-side table")
    parser.add_argument("--worker", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, engine, threads, seconds, sweep, quick = args.worker
        print(json.dumps(worker(args.work, Path(model), engine, int(threads), float(seconds), sweep == "1", quick == "1")))
        return
    if args.quick:
        args.work = args.work.with_name(args.work.name + "-quick")
    model = prepare(args.work, args.quick)
    seconds = 6.0 if args.quick else args.seconds
    thread_counts = (1,) if args.quick else tuple(args.threads)
    single, sweep = [], []
    for engine in args.engines:
        for threads in thread_counts:
            r = run_worker(args.work, model, engine, threads, seconds, int(threads == thread_counts[-1]), int(args.quick))
            for chunk, row in r["single"].items():
                single.append([engine, threads, chunk, f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}"])
                print("per chunk:", single[-1], flush=True)
            best = 0
            for row in r["sweep"]:
                sweep.append([engine, threads, row["streams"], f"{row['p50_ms']:.1f}", f"{row['p95_ms']:.1f}"])
                print("concurrent:", sweep[-1], flush=True)
                best = row["streams"] if row["p95_ms"] <= row["chunk_ms"] else best
            if r["sweep"]:
                sweep.append([engine, threads, f"real-time: {best}", "", ""])
    print("\nPer-chunk latency, one stream, look-back 4 / 1 (ms)\n")
    print(table(single, ["engine", "threads", "chunk", "p50", "p95"]))
    print(f"\nConcurrent streams decoded together, 600 ms chunks, {thread_counts[-1]} thread(s): round time (ms)\n")
    print(table(sweep, ["engine", "threads", "streams", "p50", "p95"]), flush=True)
    if args.reference_python:
        import soundfile as sf

        wav = args.work / "side_by_side.wav"
        sf.write(wav, long_recording(seconds), 16000)
        rows = []
        threads = thread_counts[-1]
        for chunk, size in CHUNKS.items():
            ours = side_by_side(sys.executable, True, "stream", model, wav, threads, size[1])
            ref = side_by_side(args.reference_python, False, "stream", model, wav, threads, size[1])
            rows.append([threads, chunk, f"{ours['p50_ms']:.1f} / {ours['p95_ms']:.1f}", f"{ref['p50_ms']:.1f} / {ref['p95_ms']:.1f}",
                         f"{ref['p95_ms'] / ours['p95_ms']:.2f}x"])
            print("side by side:", rows[-1], flush=True)
        print("\nPyTorch generate(cache=...) per chunk, look-back 4 / 1, p50 / p95 ms: this project vs FunASR 1.4.16\n")
        print(table(rows, ["threads", "chunk", "ours", "FunASR", "speed-up (p95)"]))


if __name__ == "__main__":
    main()
