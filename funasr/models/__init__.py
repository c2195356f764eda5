"""Model families. Importing this package needs no torch; the torch-free parts (the VAD segmenter,
punctuation text rules) are imported by the onnxruntime runtime."""
from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("load_checkpoint", "read_state_dict"):
        from funasr.models import checkpoint

        return getattr(checkpoint, name)
    raise AttributeError(f"module 'funasr.models' has no attribute {name!r}")
