"""funasr: speech recognition that loads FunASR's released models and speaks FunASR's API."""
from typing import Any

__version__ = "0.1.0"

__all__ = ["AutoModel", "__version__"]


def __getattr__(name: str) -> Any:
    # AutoModel needs torch; importing it lazily keeps the torch-free core importable without it.
    if name == "AutoModel":
        from funasr.auto_model import AutoModel

        return AutoModel
    raise AttributeError(f"module 'funasr' has no attribute {name!r}")
