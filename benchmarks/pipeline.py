"""VAD -> ASR -> punctuation on long recordings: RTF and peak RSS, optionally beside the reference.

Models: the real FSMN-VAD (bundled), a random-weight Paraformer-large (220 M parameters, CIF set to
fire at a speech-like rate, see benchmarks/asr.py) and a random-weight CT-Transformer of ct-punc-c
size (73 M parameters). Recordings are the fixture clips with gaps, 10 and 60 minutes long.
Each run is a fresh process, so its peak RSS is its own.

    python benchmarks/pipeline.py                                  # funasr only
    python benchmarks/pipeline.py --reference-python /path/to/venv/bin/python --minutes 3 10

``--reference-python`` names an interpreter where FunASR 1.4.16 is installed (in its own virtual
environment: it has our import name); benchmarks/side_by_side.py runs there through its AutoModel.
Runs alternate ours / theirs, ``--repeat`` times; the best of each is kept.

``--plans`` prints the batch-plan table instead: pipeline RTF with ``batch_size_s`` 1 / 20 / 60 / 300
packed greedily (FunASR's meaning: padded seconds per batch) and with the automatic plan
(funasr.planner, under ``batch_size_s=300``), for PyTorch and funasr_onnx int8, each engine in one
fresh process, settings alternated ``--repeat`` times (best kept). The calibration (once per
process) is timed apart; int8 graphs are planned one at a time (their batches change results).

    python benchmarks/pipeline.py --plans --minutes 3 --repeat 2
    python benchmarks/pipeline.py --minutes 3 --reference-python /work/venv-ref/bin/python --repeat 3
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import ROOT, SPEC_CONFIGS, load_chain, random_model_dir, side_by_side, table, write_recording  # noqa: E402

SETTINGS = ("1", "20", "60", "300", "auto")


def cpu_name() -> str:
    """The CPU model, its widest SIMD, the cores and the load average now."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), platform.processor())
    simd = "AVX-512" if " avx512f" in info else "AVX2" if " avx2" in info else "no AVX2"
    return f"{name} ({simd}, {os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f}"


def plan_worker(engine: str, models: dict, wav: str, threads: int, repeat: int) -> dict:
    """Every setting of SETTINGS on one chain in this process, alternated ``repeat`` times: best wall time of each."""
    from funasr import planner

    cost_model = planner.cost_model

    chain = load_chain(engine, models, threads)
    start = time.perf_counter()
    model = cost_model(chain.task)
    calibration = time.perf_counter() - start
    print(engine, f"calibration {calibration:.2f} s", model, file=sys.stderr, flush=True)
    best: dict[str, float] = {}
    texts: dict[str, str] = {}
    for r in range(repeat):
        for setting in SETTINGS[r % len(SETTINGS):] + SETTINGS[: r % len(SETTINGS)]:
            planner.cost_model = cost_model if setting == "auto" else (lambda task: None)  # None: greedy packing
            start = time.perf_counter()
            (result,) = chain.generate(wav, batch_size_s=300 if setting == "auto" else float(setting))
            best[setting] = min(best.get(setting, float("inf")), time.perf_counter() - start)
            texts[setting] = result["text"]
            print(engine, setting, f"{best[setting]:.2f}", file=sys.stderr, flush=True)
    return {"best": best, "calibration": calibration, "model": repr(model),
            "same_text": sorted(k for k, t in texts.items() if t == texts["1"])}


def plan_table(models: dict[str, dict], wav: Path, seconds: float, threads: int, repeat: int) -> str:
    """The batch-plan table: each engine in a fresh process."""
    rows, notes = [], []
    for engine, folders in models.items():
        cmd = [sys.executable, __file__, "--worker", engine, json.dumps(folders), str(wav), str(threads), str(repeat)]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise RuntimeError(f"{engine} worker failed:\n{proc.stderr[-3000:]}")
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        fixed = min(r["best"][s] for s in SETTINGS if s != "auto")
        for setting in SETTINGS:
            wall = r["best"][setting]
            label = "automatic plan (≤ 300 s)" if setting == "auto" else f"batch_size_s={setting}, greedy"
            rows.append([engine, label, f"{wall:.2f}", f"{wall / seconds:.4f}", f"{wall / r['best']['1']:.2f}",
                         f"{wall / fixed:.2f}", "yes" if setting in r["same_text"] else "no"])
        notes.append(f"{engine}: calibration {r['calibration']:.2f} s (once per process, not in the times), {r['model']}")
    header = ["engine", "batches", "wall s", "RTF", "× one at a time", "× best fixed", "text = one at a time"]
    return "\n".join([table(rows, header), "", *notes])


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--reference-python", help="interpreter with FunASR 1.4.16 installed, for a side-by-side run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/funasr-bench"))
    parser.add_argument("--repeat", type=int, default=1, help="alternated runs per setting; the best is kept")
    parser.add_argument("--plans", action="store_true", help="the batch-plan table (PyTorch and ONNX int8)")
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        engine, folders, wav, threads, repeat = args.worker
        print(json.dumps(plan_worker(engine, json.loads(folders), wav, int(threads), int(repeat))))
        return

    from asr import build_model

    args.work.mkdir(parents=True, exist_ok=True)
    punc_dir = args.work / "ct_punc_c_random"
    if not (punc_dir / "model.pt").is_file():
        random_model_dir(SPEC_CONFIGS / "ct_punc_c.config.yaml", punc_dir, vocab_size=272727)
    models = {"asr": build_model(args.work / "paraformer_large_random"), "vad": ROOT / "funasr" / "assets" / "fsmn-vad",
              "punc": punc_dir}
    if args.plans:
        from runtime import prepare

        exported = prepare(args.work)["uint8"]  # int8 graphs, the reference's uint8 weights
        for minutes in args.minutes:
            wav = args.work / f"recording_{minutes:g}min.wav"
            if not wav.is_file():
                write_recording(wav, minutes * 60)
            print(f"{minutes:g}-minute recording, {args.threads[0]} threads, {cpu_name()}")
            folders = {"pytorch": {k: str(v) for k, v in models.items()}, "onnx-int8": exported}
            print(plan_table(folders, wav, minutes * 60, args.threads[0], args.repeat))
            print(f"(load average after: {os.getloadavg()[0]:.1f})")
        return
    rows = []
    for minutes in args.minutes:
        wav = args.work / f"recording_{minutes:g}min.wav"
        if not wav.is_file():
            write_recording(wav, minutes * 60)
        for threads in args.threads:
            runs = [("funasr", sys.executable, True)]
            if args.reference_python:
                runs.append(("FunASR 1.4.16", args.reference_python, False))
            best: dict[str, dict] = {}
            for _ in range(args.repeat):
                for name, python, ours in runs:
                    r = side_by_side(python, ours, "pipeline", models["asr"], models["vad"], models["punc"], wav, threads)
                    print(name, f"{r['wall']:.2f}", file=sys.stderr, flush=True)
                    if name not in best or r["wall"] < best[name]["wall"]:
                        best[name] = r
            for name, r in best.items():
                ratio = r["wall"] / best["FunASR 1.4.16"]["wall"] if "FunASR 1.4.16" in best else 1.0
                rows.append([name, f"{minutes:g} min", threads, f"{r['wall']:.1f}", f"{r['wall'] / r['audio']:.4f}",
                             f"{ratio:.2f}", f"{r['rss_mb']:.0f}", len(r["text"])])
    print(cpu_name())
    print(table(rows, ["toolkit", "audio", "threads", "wall s", "RTF", "× reference", "peak RSS MB", "output chars"]))


if __name__ == "__main__":
    main()
