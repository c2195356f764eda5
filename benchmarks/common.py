"""Shared benchmark helpers: long recordings from the fixture clips, random-weight model folders, timing."""
from __future__ import annotations

import resource
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import soundfile as sf
import yaml

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
AUDIO = FIXTURES / "parity" / "audio"
SPEC_CONFIGS = FIXTURES / "checkpoints"
ASR_MVN = FIXTURES / "parity" / "models" / "paraformer_tiny" / "am.mvn"


def long_recording(seconds: float, seed: int = 0, gap_s: tuple[float, float] = (0.5, 3.0)) -> np.ndarray:
    """Fixture speech clips in random order with low-noise gaps, ``seconds`` long, 16 kHz float32."""
    rng = np.random.default_rng(seed)
    clips = [sf.read(p, dtype="float32")[0] for p in sorted(AUDIO.glob("*.wav")) if p.name != "pub_concat.wav"]
    total = int(seconds * 16000)
    parts, n = [], 0
    while n < total:
        gap = rng.normal(0, 0.002, int(rng.uniform(*gap_s) * 16000)).astype(np.float32)
        clip = clips[int(rng.integers(len(clips)))]
        parts += [gap, clip]
        n += len(gap) + len(clip)
    return np.concatenate(parts)[:total]


def write_recording(path: Path, seconds: float) -> Path:
    """Write ``long_recording(seconds)`` to ``path`` as 16 kHz wav."""
    sf.write(path, long_recording(seconds), 16000)
    return path


def random_model_dir(config_yaml: Path, out: Path, vocab_size: int, seed: int = 0) -> Path:
    """A model folder with the released config, random weights and a ``vocab_size`` token list."""
    import json

    import torch

    from funasr import registry
    from funasr.config import resolve_model_dir

    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(config_yaml, out / "config.yaml")
    cfg = yaml.safe_load(config_yaml.read_text())
    cjk = 0x9FFF - 0x4E00
    words = [chr(0x4E00 + i) if i < cjk else f"w{i}" for i in range(vocab_size - 4)]
    tokens = ["<blank>", "<s>", "</s>"] + words + ["<unk>"]
    (out / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False))
    if cfg.get("frontend_conf", {}).get("lfr_m"):
        shutil.copyfile(ASR_MVN, out / "am.mvn")
    cfg = resolve_model_dir(out)
    torch.manual_seed(seed)
    input_size = 560 if cfg.get("frontend") else None
    model = registry.lookup(cfg["model"]).from_config(cfg, input_size=input_size, vocab_size=vocab_size)
    torch.save(model.state_dict(), out / "model.pt")
    return out


def load_chain(engine: str, models: dict, threads: int) -> Any:
    """VAD -> ASR -> punctuation: ``funasr.AutoModel`` ("pytorch") or ``funasr_onnx.AutoModel`` (int8 unless "onnx-fp32")."""
    if engine == "pytorch":
        from funasr import AutoModel

        return AutoModel(model=models["asr"], vad_model=models["vad"], punc_model=models["punc"], device="cpu",
                         ncpu=threads, disable_pbar=True)
    sys.path.insert(0, str(ROOT / "runtime" / "python"))
    import funasr_onnx

    return funasr_onnx.AutoModel(model=models["asr"], vad_model=models["vad"], punc_model=models["punc"],
                                 intra_op_num_threads=threads, quantize=engine != "onnx-fp32", disable_pbar=True)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    """The fastest of ``repeat`` runs of ``fn``, in seconds (after one warm-up run)."""
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def table(rows: list[list[object]], header: list[str]) -> str:
    """A Markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def side_by_side(python: str, ours: bool, *args: object) -> dict:
    """``benchmarks/side_by_side.py`` under ``python`` (ours: with this repository on the path)."""
    import json
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    if ours:
        env["PYTHONPATH"] = str(ROOT)
    cmd = [python, str(ROOT / "benchmarks" / "side_by_side.py"), *map(str, args)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd="/tmp")
    if proc.returncode != 0:
        raise RuntimeError(f"{python} side_by_side.py failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def rss_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak_rss() -> None:
    """Restart the kernel's peak-RSS (VmHWM) count for this process."""
    Path("/proc/self/clear_refs").write_text("5")
