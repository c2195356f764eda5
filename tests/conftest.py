"""Shared test helpers: paths into tests/fixtures, the parity cases, text and time comparison, exports."""
from __future__ import annotations

import json
import os
import re
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from funasr.auto_model import AutoModel

ROOT = Path(__file__).resolve().parent.parent
RUNTIME = ROOT / "runtime" / "python"
FIXTURES = ROOT / "tests" / "fixtures"
CHECKPOINTS = FIXTURES / "checkpoints"
PARITY = FIXTURES / "parity"
AUDIO = PARITY / "audio"
MODELS = PARITY / "models"
CLIP = FIXTURES / "synthetic_zh" / "clip.wav"  # two held-out test sentences of egs/synthetic_zh, 0.8 s apart
CLIP_TEXT = "这个酒店真是差而非常不好，还有就是送的电脑包太小了。"  # what the bundled models (with their LM) make of it: 啊 -> 而
BUNDLED_VAD = ROOT / "funasr" / "assets" / "fsmn-vad"
TOLERANCE_MS = 20  # times (segments, tokens, sentences) agree with the reference within this

ASR_MODELS = ["paraformer_tiny", "bicif_paraformer_tiny", "seaco_paraformer_tiny", "contextual_paraformer_tiny"]
PUNC_MODELS = ["ct_punc_tiny", "ct_punc_jieba_tiny"]
ALL_MODELS = ["fsmn-vad", *ASR_MODELS, *PUNC_MODELS]

# funasr_onnx writes its CPU-specific int8 copies, and the planner its calibrations, here, not into the home
# folder (subprocesses inherit it).
os.environ.setdefault("FUNASR_ONNX_CACHE", tempfile.mkdtemp(prefix="funasr-onnx-cache-"))
os.environ.setdefault("FUNASR_CACHE", tempfile.mkdtemp(prefix="funasr-cache-"))


def parity_path(rel: str) -> Path:
    """A path of the parity cases (``models/fsmn-vad`` is the copy bundled in the package)."""
    if rel.rstrip("/") == "models/fsmn-vad":
        return BUNDLED_VAD
    return PARITY / rel


def parity_cases(prefix: str | tuple[str, ...]) -> list[dict]:
    """The cases of expected.json whose id starts with ``prefix`` (or one of several)."""
    cases = json.loads((PARITY / "expected.json").read_text(encoding="utf-8"))["cases"]
    return [c for c in cases if c["id"].startswith(prefix)]


def read_wave(name: str) -> np.ndarray:
    """The float32 samples of parity audio file ``name`` (e.g. ``"example.wav"``)."""
    return sf.read(AUDIO / name, dtype="float32")[0]


def norm_text(text: str, spaces: bool = True) -> str:
    """Text as compared with the reference: no ``<unk>``, whitespace collapsed (or removed with ``spaces=False``)."""
    text = re.sub(r"\s+", " ", text.replace("<unk>", "")).strip()
    return text if spaces else text.replace(" ", "")


def close_ms(got: list, want: list, tol: int = TOLERANCE_MS) -> bool:
    """Lists of ``[start, end]`` pairs of the same length whose times differ by at most ``tol`` ms."""
    return len(got) == len(want) and all(abs(a - b) <= tol for g, w in zip(got, want) for a, b in zip(g, w))


def model_path(name: str) -> Path:
    """The parity model folder of ``name`` (fsmn-vad is the real model bundled with the package)."""
    return BUNDLED_VAD if name == "fsmn-vad" else MODELS / name


@lru_cache(maxsize=None)
def auto(name: str) -> AutoModel:
    """The PyTorch ``AutoModel`` of parity model ``name`` on the CPU, built once per session."""
    return AutoModel(model=str(model_path(name)), device="cpu", disable_pbar=True)


def exported(root: Path, name: str, type: str = "onnx") -> Path:
    """``name`` exported (ONNX with int8, or TorchScript) under ``root``, once per test session."""
    out = root / f"{name}-{type}"
    if not (out / "config.yaml").is_file():
        auto(name).export(type=type, quantize=type == "onnx", output_dir=str(out))
    return out


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): tiny models' many small
    steps run fastest on one, and two spin-wait many times over on a shared, busy CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def export_root(tmp_path_factory) -> Path:
    """One folder for the exported parity models of the session (``exported`` fills it on demand)."""
    return tmp_path_factory.mktemp("exports")


def full_disk() -> None:
    """``preexec_fn`` of a child process: files hold at most 1 byte, and a write past that fails (EFBIG) as on a full disk."""
    import resource
    import signal

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))
