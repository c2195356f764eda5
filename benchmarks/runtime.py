"""PyTorch vs ONNX fp32 vs ONNX int8: RTF of Paraformer-large on an 8 s clip and of the 10-minute VAD -> ASR -> punc chain.

Models: a random-weight Paraformer-large (released config, 220 M parameters, vocab 8404; its CIF
set to fire at a speech-like rate, as in benchmarks/asr.py), the real FSMN-VAD (bundled) and a
random-weight CT-Transformer of ct-punc-c size (73 M parameters). They are exported with
``funasr.export`` into ``--work``, once: ONNX fp32, and int8 twice, with the reference's
uint8 weights ("onnx-int8") and with int8 weights ("onnx-int8-s8", ``weight_type="int8"``,
whose MatMuls use the VNNI/AMX kernels). "pytorch" is ``funasr.AutoModel``; the others are
``funasr_onnx.AutoModel`` (int8: all three models quantised, as the reference's servers run
them). Each engine and thread count runs in a fresh process.

- 8 s clip: ASR alone on one 8 s utterance, best of ``--repeat`` after a warm-up; RTF = time / 8 s.
- pipeline: ``generate(recording, batch_size_s=300)`` with VAD and punctuation on a
  ``--minutes`` recording made of the fixture clips with gaps; one timed run. Peak RSS: the
  worker process's ``ru_maxrss`` (models loaded, clip and pipeline run).

With ``--reference-python PATH`` (an interpreter with FunASR's ``funasr-onnx`` package) a second
table runs FunASR's own onnxruntime ``Paraformer`` on the same exported folder and 8 s clip.

    python benchmarks/runtime.py
    python benchmarks/runtime.py --threads 2 --minutes 3 --engines onnx-int8
    python benchmarks/runtime.py --reference-python /path/to/venv/bin/python
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import (  # noqa: E402
    ROOT, SPEC_CONFIGS, best_time, load_chain, long_recording, peak_rss_mb, random_model_dir, side_by_side, table,
    write_recording,
)

ENGINES = ("pytorch", "onnx-fp32", "onnx-int8", "onnx-int8-s8")
WEIGHT_TYPES = {"onnx-fp32": "uint8", "onnx-int8": "uint8", "onnx-int8-s8": "int8"}
CLIP_SECONDS = 8.0


def worker(engine: str, threads: int, models: dict[str, str], recording: str, repeat: int) -> dict:
    """Both measurements for one engine at one thread count, in this process."""
    import soundfile as sf

    from funasr.audio import AudioItem

    chain = load_chain(engine, models, threads)
    clip = [AudioItem("clip", long_recording(CLIP_SECONDS, seed=1))]
    clip_rtf = best_time(lambda: chain.task(clip), repeat) / CLIP_SECONDS
    clip_text = chain.task(clip)[0]["text"]
    start = time.perf_counter()
    (result,) = chain.generate(recording, batch_size_s=300)
    wall = time.perf_counter() - start
    return {"clip_rtf": clip_rtf, "clip_text": clip_text, "wall": wall, "audio": sf.info(recording).duration,
            "chars": len(result["text"]), "rss_mb": peak_rss_mb()}


def run_worker(engine: str, threads: int, models: dict[str, str], recording: Path, repeat: int) -> dict:
    """``worker`` in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--worker", engine, str(threads), json.dumps(models), str(recording), str(repeat)]
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{engine} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def prepare(work: Path) -> dict[str, dict[str, str]]:
    """Random-weight model folders and their exported copies (ONNX fp32 + int8 per weight type), built once into ``work``."""
    from asr import build_model

    from funasr import AutoModel

    sources = {
        "asr": build_model(work / "paraformer_large_random"),
        "vad": ROOT / "funasr" / "assets" / "fsmn-vad",
        "punc": work / "ct_punc_c_random",
    }
    if not (sources["punc"] / "model.pt").is_file():
        random_model_dir(SPEC_CONFIGS / "ct_punc_c.config.yaml", sources["punc"], vocab_size=272727)
    folders = {"pytorch": {k: str(v) for k, v in sources.items()}}
    for weight_type in sorted(set(WEIGHT_TYPES.values())):
        folders[weight_type] = {}
        for name, folder in sources.items():
            out = work / f"onnx-{weight_type}" / name
            if not (out / "model_quant.onnx").is_file():
                print(f"exporting {folder} ({weight_type} weights) ...", file=sys.stderr, flush=True)
                model = AutoModel(model=str(folder), device="cpu", disable_pbar=True)
                model.export(type="onnx", quantize=True, weight_type=weight_type, output_dir=str(out))
            folders[weight_type][name] = str(out)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--engines", nargs="+", choices=ENGINES, default=list(ENGINES))
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the pipeline recording")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of the 8 s clip (best kept)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/funasr-bench-runtime"))
    parser.add_argument("--reference-python", help="interpreter with FunASR's funasr-onnx: adds a side-by-side table")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        engine, threads, models, recording, repeat = args.worker
        print(json.dumps(worker(engine, int(threads), json.loads(models), recording, int(repeat))))
        return
    args.work.mkdir(parents=True, exist_ok=True)
    folders = prepare(args.work)
    recording = args.work / f"recording_{args.minutes:g}min.wav"
    if not recording.is_file():
        write_recording(recording, args.minutes * 60)
    results = {}
    for threads in args.threads:
        for engine in args.engines:
            models = folders[WEIGHT_TYPES.get(engine, "pytorch")]
            results[engine, threads] = run_worker(engine, threads, models, recording, args.repeat)
            print(engine, threads, results[engine, threads], file=sys.stderr, flush=True)
    rows = []
    for (engine, threads), r in results.items():
        base = results.get(("pytorch", threads))
        pipe_rtf = r["wall"] / r["audio"]
        speedup = f"{base['clip_rtf'] / r['clip_rtf']:.2f}x" if base else "-"
        pipe_speedup = f"{base['wall'] / r['wall']:.2f}x" if base else "-"
        rows.append([engine, threads, f"{r['clip_rtf']:.4f}", speedup, f"{pipe_rtf:.4f}", pipe_speedup, f"{r['rss_mb']:.0f}",
                     r["chars"]])
    print("Paraformer-large (random weights, 220 M parameters), CPU")
    print(table(rows, ["engine", "threads", "8 s clip RTF", "vs pytorch", f"{args.minutes:g} min pipeline RTF",
                       "vs pytorch", "peak RSS MiB", "output chars"]))
    if args.reference_python:
        print("\nSide by side with FunASR's funasr_onnx on the same folder (FunASR's uint8 model_quant.onnx), 8 s clip:")
        print(compare_with_reference(results, folders["uint8"]["asr"], args))


def compare_with_reference(results: dict, folder: str, args: argparse.Namespace) -> str:
    """RTF of FunASR's funasr_onnx ``Paraformer`` on the 8 s clip next to ours, per precision and thread count."""
    import soundfile as sf

    wav = args.work / "clip_8s.wav"
    sf.write(wav, long_recording(CLIP_SECONDS, seed=1), 16000)
    rows = []
    for (engine, threads), ours in results.items():
        if engine not in ("onnx-fp32", "onnx-int8"):
            continue
        precision = engine.split("-")[1]
        ref = side_by_side(args.reference_python, False, "onnx", folder, wav, threads, args.repeat, precision)
        ref_rtf = ref["wall"] / CLIP_SECONDS
        rows.append([precision, threads, f"{ours['clip_rtf']:.4f}", f"{ref_rtf:.4f}", f"{ref_rtf / ours['clip_rtf']:.2f}x",
                     f"{len(ours['clip_text'].replace(' ', ''))} / {len(ref['text'].replace(' ', ''))}"])
    return table(rows, ["precision", "threads", "funasr_onnx (ours) RTF", "FunASR funasr_onnx RTF", "speed-up", "chars (ours / FunASR)"])


if __name__ == "__main__":
    main()
