"""Shared fixtures: paths into tests/fixtures and the parity cases."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
PARITY = FIXTURES / "parity"
AUDIO = PARITY / "audio"
BUNDLED_VAD = Path(__file__).parent.parent / "funasr" / "assets" / "fsmn-vad"


def parity_path(rel: str) -> Path:
    """A path of the parity cases (``models/fsmn-vad`` is the copy bundled in the package)."""
    if rel.rstrip("/") == "models/fsmn-vad":
        return BUNDLED_VAD
    return PARITY / rel


def parity_cases(prefix: str) -> list[dict]:
    """The cases of expected.json whose id starts with ``prefix``."""
    cases = json.loads((PARITY / "expected.json").read_text(encoding="utf-8"))["cases"]
    return [c for c in cases if c["id"].startswith(prefix)]


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    return AUDIO
