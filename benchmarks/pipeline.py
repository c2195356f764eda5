"""VAD -> ASR -> punctuation on long recordings: RTF and peak RSS, optionally beside the reference.

Models: the real FSMN-VAD (bundled), a random-weight Paraformer-large (220 M parameters, CIF set to
fire at a speech-like rate, see benchmarks/asr.py) and a random-weight CT-Transformer of ct-punc-c
size (73 M parameters). Recordings are the fixture clips with gaps, 10 and 60 minutes long.
Each run is a fresh process, so its peak RSS is its own.

    python benchmarks/pipeline.py                                  # funasr only
    python benchmarks/pipeline.py --reference-python /path/to/venv/bin/python --minutes 3 10

``--reference-python`` names an interpreter where FunASR 1.4.16 is installed (in its own virtual
environment: it has our import name); benchmarks/side_by_side.py runs there through its AutoModel.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from common import ROOT, SPEC_CONFIGS, random_model_dir, side_by_side, table, write_recording  # noqa: E402

def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10, 60])
    parser.add_argument("--threads", type=int, nargs="+", default=[2])
    parser.add_argument("--reference-python", help="interpreter with FunASR 1.4.16 installed, for a side-by-side run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/funasr-bench"))
    args = parser.parse_args()

    from asr import build_model

    args.work.mkdir(parents=True, exist_ok=True)
    punc_dir = args.work / "ct_punc_c_random"
    if not (punc_dir / "model.pt").is_file():
        random_model_dir(SPEC_CONFIGS / "ct_punc_c.config.yaml", punc_dir, vocab_size=272727)
    models = {"asr": build_model(args.work / "paraformer-large-random"), "vad": ROOT / "funasr" / "assets" / "fsmn-vad",
              "punc": punc_dir}
    rows = []
    for minutes in args.minutes:
        wav = args.work / f"recording_{minutes:g}min.wav"
        if not wav.is_file():
            write_recording(wav, minutes * 60)
        for threads in args.threads:
            runs = [("funasr", sys.executable, True)]
            if args.reference_python:
                runs.append(("FunASR 1.4.16", args.reference_python, False))
            for name, python, ours in runs:
                r = side_by_side(python, ours, "pipeline", models["asr"], models["vad"], models["punc"], wav, threads)
                rows.append([name, f"{minutes:g} min", threads, f"{r['wall']:.1f}", f"{r['wall'] / r['audio']:.4f}",
                             f"{r['rss_mb']:.0f}", len(r["text"])])
                print(rows[-1], file=sys.stderr, flush=True)
    print(table(rows, ["toolkit", "audio", "threads", "wall s", "RTF", "peak RSS MB", "output chars"]))


if __name__ == "__main__":
    main()
