"""A tiny speech corpus for the training tests: clips of the parity audio with fixed made-up transcripts.

Clips (0.8-1.6 s; twenty by default) cut from the three fixture recordings, each labelled with 2-5 characters of
the tiny models' token list (seeded, so every run makes the same corpus). A model that learns to
map each clip to its label has learned the corpus: what the overfitting tests check.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from conftest import AUDIO, MODELS

TOKENS = MODELS / "paraformer_tiny" / "tokens.json"


def characters() -> list[str]:
    """The single CJK characters of the tiny models' token list."""
    tokens = json.loads(TOKENS.read_text(encoding="utf-8"))
    return [t for t in tokens if len(t) == 1 and "\u4e00" <= t <= "\u9fff"]


def make_corpus(root: Path, n: int = 20, seed: int = 0) -> dict[str, Path]:
    """Write ``n`` clips under ``root/wav`` and Kaldi lists ``root/wav.scp``, ``root/text``; returns their paths."""
    rng = np.random.default_rng(seed)
    chars = characters()
    audio = np.concatenate([sf.read(AUDIO / name, dtype="float32")[0] for name in ("example.wav", "sample.wav", "pub_concat.wav")])
    audio = np.resize(audio, max(len(audio), n * 25600))  # 33 s of audio: larger corpora wrap around it
    (root / "wav").mkdir(parents=True, exist_ok=True)
    scp, text = [], []
    start = 0
    for i in range(n):
        length = int(rng.integers(12800, 25600))  # 0.8-1.6 s
        clip = audio[start : start + length]
        start += length
        key = f"utt{i:02d}"
        path = root / "wav" / f"{key}.wav"
        sf.write(path, clip, 16000, subtype="PCM_16")
        label = "".join(rng.choice(chars, size=int(rng.integers(2, 6))))
        scp.append(f"{key} {path}")
        text.append(f"{key} {label}")
    (root / "wav.scp").write_text("\n".join(scp) + "\n", encoding="utf-8")
    (root / "text").write_text("\n".join(text) + "\n", encoding="utf-8")
    return {"wav.scp": root / "wav.scp", "text": root / "text"}


def make_jsonl(root: Path, n: int = 20, seed: int = 0) -> Path:
    """The corpus of :func:`make_corpus` as a FunASR jsonl list ``root/data.jsonl``."""
    from funasr.data.jsonl import scp2jsonl

    lists = make_corpus(root, n, seed)
    out = root / "data.jsonl"
    scp2jsonl([str(lists["wav.scp"]), str(lists["text"])], ["source", "target"], str(out))
    return out
