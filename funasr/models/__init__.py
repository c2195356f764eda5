"""Model families, one folder each (declared in its family.py, found by funasr.registry).

Importing this package, a family's package, its family.py and onnx.py needs no torch; those and
the other torch-free parts (the VAD segmenter, punctuation text rules, CIF arithmetic) are what
the onnxruntime runtime imports."""
from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("load_checkpoint", "read_state_dict"):
        from funasr.models import checkpoint

        return getattr(checkpoint, name)
    if name == "build_network":
        from funasr.models.network import build_network

        return build_network
    raise AttributeError(f"module 'funasr.models' has no attribute {name!r}")
