"""Name -> class table: the names that appear in config.yaml resolve here."""
from __future__ import annotations

import importlib
from typing import Any, Callable, TypeVar

from funasr.errors import ConfigError

T = TypeVar("T", bound=type)

_TABLE: dict[str, type] = {}

# Modules whose import registers the classes config.yaml files name.
_PROVIDERS = (
    "funasr.frontend",
    "funasr.tokenizer",
    "funasr.models.sanm",
    "funasr.models.fsmn_vad.model",
    "funasr.models.paraformer",
    "funasr.models.seaco_paraformer",
    "funasr.models.contextual_paraformer",
    "funasr.models.ct_transformer.model",
)


def register(*aliases: str) -> Callable[[T], T]:
    """Class decorator: register a class under its own name and any aliases."""

    def deco(cls: T) -> T:
        for name in (cls.__name__, *aliases):
            _TABLE[name] = cls
        return cls

    return deco


def _load_providers() -> None:
    for mod in _PROVIDERS:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:  # a provider not written yet, or torch absent
            if e.name is None or not (e.name.startswith("funasr") or e.name == "torch"):
                raise


def lookup(name: str) -> type:
    """Return the class registered under ``name``."""
    if name not in _TABLE:
        _load_providers()
    if name not in _TABLE:
        known = ", ".join(sorted(_TABLE)) or "none"
        raise ConfigError(f"config names the class {name!r}, which funasr does not know (known: {known})")
    return _TABLE[name]


def build(name: str, **conf: Any) -> Any:
    """Instantiate the class registered under ``name`` with ``conf``."""
    return lookup(name)(**conf)
