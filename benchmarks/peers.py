"""funasr beside its peers: ASR on the same VAD segments of the same 10-minute recording, same exported model.

Systems (each run in a fresh process; peak RSS is the process's own, load time is the model
constructor's):

- funasr PyTorch (``funasr.AutoModel``), funasr_onnx fp32 / int8 (``funasr_onnx.AutoModel``);
- FunASR 1.4.16 PyTorch (``funasr.AutoModel``) and FunASR's funasr-onnx 0.4.3 (``funasr_onnx.Paraformer``)
  fp32 / int8, under ``--reference-python`` (a separate interpreter: same import names);
- sherpa-onnx fp32 / int8 (``OfflineRecognizer.from_paraformer``) on our ``--format sherpa-onnx`` export.

Model: the random-weight Paraformer-large of benchmarks/asr.py (released config, 220 M parameters,
vocab 8404, CIF firing at a speech-like rate), exported once with ``funasr.export``: ``model.onnx`` /
``model_quant.onnx`` for both funasr_onnx packages, and the same fp32 graph with sherpa-onnx's
metadata (``model.onnx`` / ``model.int8.onnx``, quantised the same way, uint8 weights). Segments: the
bundled FSMN-VAD's segments of the recording, computed once; every system decodes them one at a time
(batch 1), in order. Rounds alternate the systems so all see the same machine load; the best wall
time of ``--rounds`` is kept. The table names the CPU, its SIMD flags and the load average seen.

A second table: funasr_onnx int8 VAD -> ASR -> punctuation (ct-punc-c size, random weights) on a
``--pipeline-minutes`` recording: RTF and peak RSS.

    python benchmarks/peers.py --reference-python /work/venv-ref/bin/python
    python benchmarks/peers.py --threads 1 --rounds 1 --minutes 2          # quick look
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SYSTEMS = ("funasr-torch", "funasr_onnx-fp32", "funasr_onnx-int8", "FunASR-torch", "FunASR-onnx-fp32", "FunASR-onnx-int8",
           "sherpa-onnx-fp32", "sherpa-onnx-int8")
REFERENCE = ("FunASR-torch", "FunASR-onnx-fp32", "FunASR-onnx-int8")
LABELS = {
    "funasr-torch": "funasr (PyTorch)", "funasr_onnx-fp32": "funasr_onnx fp32", "funasr_onnx-int8": "funasr_onnx int8",
    "FunASR-torch": "FunASR 1.4.16 (PyTorch)", "FunASR-onnx-fp32": "FunASR funasr-onnx 0.4.3 fp32",
    "FunASR-onnx-int8": "FunASR funasr-onnx 0.4.3 int8", "sherpa-onnx-fp32": "sherpa-onnx fp32",
    "sherpa-onnx-int8": "sherpa-onnx int8",
}


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM, MiB): unlike ru_maxrss, not inherited from the parent that forked it."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) / 1024


def load_system(system: str, folders: dict[str, str], threads: int):
    """The model of ``system`` and a function decoding one float32 waveform to text (imports inside: runs under either interpreter)."""
    if system in ("funasr-torch", "FunASR-torch"):
        if system == "FunASR-torch":
            from side_by_side import import_torchaudio  # the reference environment's torchaudio extension may not load

            import_torchaudio()
        import torch
        from funasr import AutoModel

        torch.set_num_threads(threads)
        extra = {"disable_update": True, "disable_log": True} if system == "FunASR-torch" else {}
        model = AutoModel(model=folders["torch"], device="cpu", ncpu=threads, disable_pbar=True, **extra)
        return lambda wave: model.generate(input=wave)[0]["text"]
    if system.startswith("funasr_onnx"):
        sys.path.insert(0, str(ROOT / "runtime" / "python"))
        import funasr_onnx

        model = funasr_onnx.AutoModel(model=folders["onnx"], quantize=system.endswith("int8"), intra_op_num_threads=threads,
                                      disable_pbar=True)
        return lambda wave: model.generate(input=wave)[0]["text"]
    if system.startswith("FunASR-onnx"):
        from funasr_onnx import Paraformer

        model = Paraformer(folders["onnx"], batch_size=1, quantize=system.endswith("int8"), intra_op_num_threads=threads)

        def decode(wave):
            preds = model(wave)[0]["preds"]
            return preds[0] if isinstance(preds, (list, tuple)) else preds

        return decode
    import sherpa_onnx

    name = "model.int8.onnx" if system.endswith("int8") else "model.onnx"
    recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(
        paraformer=str(Path(folders["sherpa"]) / name), tokens=str(Path(folders["sherpa"]) / "tokens.txt"), num_threads=threads
    )

    def decode(wave):
        stream = recognizer.create_stream()
        stream.accept_waveform(16000, wave)
        recognizer.decode_stream(stream)
        return stream.result.text

    return decode


def worker(system: str, threads: int, folders: dict[str, str], wav: str, segments: str) -> dict:
    """Load ``system``, decode every segment once after a one-segment warm-up; times, peak RSS and texts."""
    import soundfile as sf

    audio = sf.read(wav, dtype="float32")[0]
    spans = json.loads(Path(segments).read_text())
    waves = [audio[s * 16 : e * 16] for s, e in spans]
    start = time.perf_counter()
    decode = load_system(system, folders, threads)
    load_s = time.perf_counter() - start
    decode(waves[0])
    start = time.perf_counter()
    texts = [decode(w) for w in waves]
    wall = time.perf_counter() - start
    return {"load_s": load_s, "wall": wall, "audio_s": len(audio) / 16000, "speech_s": sum(len(w) for w in waves) / 16000,
            "rss_mb": peak_rss_mb(), "texts": texts}


def pipeline_worker(folders: dict[str, str], wav: str, threads: int) -> dict:
    """funasr_onnx int8 VAD -> ASR -> punctuation over ``wav``: wall time and peak RSS."""
    import soundfile as sf

    sys.path.insert(0, str(ROOT / "runtime" / "python"))
    import funasr_onnx

    model = funasr_onnx.AutoModel(model=folders["onnx"], vad_model=folders["vad"], punc_model=folders["punc"], quantize=True,
                                  intra_op_num_threads=threads, disable_pbar=True)
    start = time.perf_counter()
    (result,) = model.generate(input=wav, batch_size_s=300)
    wall = time.perf_counter() - start
    return {"wall": wall, "audio_s": sf.info(wav).duration, "rss_mb": peak_rss_mb(),
            "chars": len(result["text"])}


def run(python: str, ours: bool, args: list[str]) -> dict:
    """This script's worker under ``python`` in a fresh process (the reference's without this repository on its path)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if ours:
        env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{ROOT / 'runtime' / 'python'}"
    proc = subprocess.run([python, str(Path(__file__).resolve()), *args], env=env, capture_output=True, text=True, cwd="/tmp")
    if proc.returncode != 0:
        raise RuntimeError(f"{args[:3]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cpu_line() -> str:
    """CPU model, core count and the SIMD flags that decide the int8 kernels."""
    info = Path("/proc/cpuinfo").read_text()
    model = next(line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name"))
    flags = next(line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags"))
    simd = [f for f in flags if f.startswith(("avx", "fma", "amx")) or "vnni" in f]
    return f"{model}, {os.cpu_count()} cores, flags: {' '.join(simd)}"


def prepare(work: Path, minutes: float, pipeline_minutes: float) -> tuple[dict[str, str], Path, Path, Path]:
    """Model folders and exports, the recordings and the VAD segments (built once into ``work``)."""
    sys.path.insert(0, str(HERE))
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "runtime" / "python"))
    from asr import build_model
    from common import SPEC_CONFIGS, random_model_dir, write_recording

    from funasr import AutoModel

    work.mkdir(parents=True, exist_ok=True)
    folders = {"torch": str(build_model(work / "paraformer_large_random")), "onnx": str(work / "onnx" / "asr"),
               "sherpa": str(work / "sherpa" / "asr"), "vad": str(work / "onnx" / "vad"), "punc": str(work / "onnx" / "punc")}
    punc_src = work / "ct_punc_c_random"
    if not (punc_src / "model.pt").is_file():
        random_model_dir(SPEC_CONFIGS / "ct_punc_c.config.yaml", punc_src, vocab_size=272727)
    sources = {"onnx": folders["torch"], "vad": str(ROOT / "funasr" / "assets" / "fsmn-vad"), "punc": str(punc_src)}
    for key, src in sources.items():
        if not (Path(folders[key]) / "model_quant.onnx").is_file():
            print(f"exporting {src} ...", file=sys.stderr, flush=True)
            AutoModel(model=src, device="cpu", disable_pbar=True).export(type="onnx", quantize=True, output_dir=folders[key])
    if not (Path(folders["sherpa"]) / "model.int8.onnx").is_file():
        AutoModel(model=folders["torch"], device="cpu", disable_pbar=True).export(type="sherpa-onnx", quantize=True,
                                                                                  output_dir=folders["sherpa"])
    wav, long_wav = work / f"recording_{minutes:g}min.wav", work / f"recording_{pipeline_minutes:g}min.wav"
    for path, length in ((wav, minutes), (long_wav, pipeline_minutes)):
        if not path.is_file():
            write_recording(path, length * 60)
    segments = work / f"segments_{minutes:g}min.json"
    if not segments.is_file():
        import funasr_onnx

        vad = funasr_onnx.AutoModel(model=folders["vad"], disable_pbar=True)
        segments.write_text(json.dumps(vad.generate(input=str(wav))[0]["value"]))
    return folders, wav, long_wav, segments


def main() -> None:
    """Print the tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--systems", nargs="+", choices=SYSTEMS, default=list(SYSTEMS))
    parser.add_argument("--rounds", type=int, default=2, help="runs of each system (best kept), alternating systems")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--pipeline-minutes", type=float, default=60.0, help="recording of the int8 pipeline RSS run (0: skip)")
    parser.add_argument("--reference-python", help="interpreter with FunASR 1.4.16 and funasr-onnx 0.4.3")
    parser.add_argument("--work", type=Path, default=Path("/tmp/funasr-bench-peers"))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, *rest = args.worker
        if mode == "pipeline":
            print(json.dumps(pipeline_worker(json.loads(rest[0]), rest[1], int(rest[2]))))
        else:
            print(json.dumps(worker(mode, int(rest[0]), json.loads(rest[1]), rest[2], rest[3]), ensure_ascii=False))
        return
    folders, wav, long_wav, segments = prepare(args.work, args.minutes, args.pipeline_minutes or args.minutes)
    systems = [s for s in args.systems if args.reference_python or s not in REFERENCE]
    best: dict[tuple[str, int], dict] = {}
    loads = []
    for rnd in range(args.rounds):
        for threads in args.threads:
            order = systems if rnd % 2 == 0 else systems[::-1]
            for system in order:
                python, ours = (args.reference_python, False) if system in REFERENCE else (sys.executable, True)
                loads.append(os.getloadavg()[0])
                r = run(python, ours, ["--worker", system, str(threads), json.dumps(folders), str(wav), str(segments)])
                key = (system, threads)
                print(rnd, system, threads, {k: v for k, v in r.items() if k != "texts"}, file=sys.stderr, flush=True)
                if key not in best or r["wall"] < best[key]["wall"]:
                    best[key] = {**r, "load_s": min(r["load_s"], best.get(key, r)["load_s"]), "rss_mb": r["rss_mb"]}
    print(render(best, folders, args, loads, segments))
    if args.pipeline_minutes:
        r = run(sys.executable, True, ["--worker", "pipeline", json.dumps(folders), str(long_wav), str(max(args.threads))])
        print(f"\nfunasr_onnx int8 VAD -> ASR -> punctuation, {args.pipeline_minutes:g} min, {max(args.threads)} threads: "
              f"RTF {r['wall'] / r['audio_s']:.4f}, peak RSS {r['rss_mb']:.0f} MB, load average {os.getloadavg()[0]:.1f}")


def render(best: dict, folders: dict, args: argparse.Namespace, loads: list[float], segments: Path) -> str:
    """The Markdown table, with the texts' agreement against sherpa-onnx / funasr_onnx of the same precision."""
    from difflib import SequenceMatcher

    sys.path.insert(0, str(HERE))
    from common import table

    spans = json.loads(segments.read_text())
    rows = []
    for (system, threads), r in best.items():
        twin = {"sherpa-onnx-fp32": "funasr_onnx-fp32", "sherpa-onnx-int8": "funasr_onnx-int8"}.get(system, "funasr-torch")
        other = best.get((twin, threads))
        agree = "-"
        if other is not None and other is not r:
            a, b = ("".join(t.split()) for t in ("".join(r["texts"]), "".join(other["texts"])))
            agree = f"{SequenceMatcher(None, a, b, autojunk=False).ratio():.3f} vs {LABELS[twin]}"
        rows.append([LABELS[system], threads, f"{r['wall'] / r['audio_s']:.4f}", f"{r['wall']:.1f}", f"{r['load_s']:.2f}",
                     f"{r['rss_mb']:.0f}", agree])
    head = (f"CPU: {cpu_line()}. Load average (1 min) during the runs: {min(loads):.1f}-{max(loads):.1f}. "
            f"{args.minutes:g} min recording, {len(spans)} VAD segments, "
            f"{sum(e - s for s, e in spans) / 1000:.0f} s of speech, decoded one segment at a time; "
            f"best of {args.rounds} alternating runs; RTF = decode time / recording length.")
    return head + "\n\n" + table(rows, ["system", "threads", "RTF", "decode s", "load s", "peak RSS MB", "text agreement"])


if __name__ == "__main__":
    main()
