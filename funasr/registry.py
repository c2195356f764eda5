"""Model families and the name -> class table (torch-free).

Each folder ``funasr/models/<family>/`` declares its family in ``family.py`` (numpy only):
``FAMILY = Family(...)`` names the config ``model:`` names it serves, the modules that
register its classes, its task, its PyTorch and onnxruntime engines, its export graphs and
its int8 exclusions. The registry finds the families by scanning those files, so adding a
family touches no table elsewhere. Class names that appear in config.yaml (models, encoders,
frontends, tokenizers, ...) resolve through :func:`lookup`.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Optional, TypeVar

from funasr.errors import ConfigError

T = TypeVar("T", bound=type)

_TABLE: dict[str, type] = {}

# Torch-free modules whose import registers the frontends and tokenizers config.yaml files name.
CORE_MODULES = ("funasr.frontend", "funasr.tokenizer")


@dataclass(frozen=True)
class Family:
    """What a model family declares in ``funasr/models/<family>/family.py``.

    References to code are ``"module:attribute"`` strings, imported only when used, so the
    declaration needs no torch. ``modules`` are the (PyTorch) modules whose import registers
    the family's model classes and parts; ``torch_engine`` / ``onnx_engine`` are engine
    classes (``funasr.engines``): ``TorchEngine(module, device, dtype)`` and
    ``OnnxEngine(load, cfg)`` where ``load(name)`` loads an exported graph; ``graphs`` is
    ``graphs(module, frontend) -> list[ExportGraph]``; ``quantize_exclude`` are parts of
    MatMul node names that int8 export keeps float. ``always_bias`` (ASR): the network
    biases with the hotword sentinel alone when given no hotwords. ``criterion`` (families that
    train): the loss module, ``Criterion(model, cfg)`` with ``forward(batch) -> (loss, stats,
    weight)``, imported by training only; ``dataset`` (families that train on something else than
    audio lists): ``"module:func"``, ``func(cfg, data_list, frontend, tokenizer, is_training)`` returning
    the training dataset (default: funasr.data's ``AudioDataset``). ``config_file`` / ``read_config``: a family whose
    folders have no ``config.yaml`` names the file that marks them and ``"module:func"`` reading
    such a folder into a resolved config (``func(model_dir)``). ``runtime_package``: ``"module:func"``
    writing, beside a TorchScript export, the file the family's own runtime loads (``func(module, frontend, out)``).
    ``train_config``: ``"module:func"`` turning such a config's own training keys into funasr-train's
    (``func(cfg) -> cfg``).
    """

    task: str
    models: tuple[str, ...]
    modules: tuple[str, ...]
    torch_engine: str
    onnx_engine: Optional[str] = None
    graphs: Optional[str] = None
    quantize_exclude: tuple[str, ...] = ()
    always_bias: bool = False
    criterion: Optional[str] = None
    dataset: Optional[str] = None
    config_file: Optional[str] = None
    read_config: Optional[str] = None
    runtime_package: Optional[str] = None
    train_config: Optional[str] = None


def resolve(ref: str) -> Any:
    """The attribute named by ``"module:attribute"`` (its module imported; import errors propagate)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


@lru_cache(maxsize=None)
def families() -> tuple[Family, ...]:
    """Every family declared under funasr/models, in folder order."""
    root = Path(__file__).resolve().parent / "models"
    found = []
    for path in sorted(root.glob("*/family.py")):
        found.append(importlib.import_module(f"funasr.models.{path.parent.name}.family").FAMILY)
    return tuple(found)


def family_of(model: str) -> Family:
    """The family serving config ``model:`` name ``model``."""
    for family in families():
        if model in family.models:
            return family
    known = ", ".join(sorted(m for f in families() for m in f.models))
    raise ConfigError(f"config names the model {model!r}, which funasr does not know (known: {known})")


def register(*aliases: str) -> Callable[[T], T]:
    """Class decorator: register a class under its own name and any aliases."""

    def deco(cls: T) -> T:
        for name in (cls.__name__, *aliases):
            _TABLE[name] = cls
        return cls

    return deco


def import_modules(modules: tuple[str, ...]) -> bool:
    """Import ``modules`` (registering their classes); False when torch is missing. Any other import error raises."""
    for mod in modules:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as e:
            if e.name is None or e.name.split(".")[0] != "torch":
                raise
            return False
    return True


def lookup(name: str) -> type:
    """Return the class registered under ``name``."""
    if name in _TABLE:
        return _TABLE[name]
    import_modules(CORE_MODULES)
    if name in _TABLE:  # a torch-free class: the families' modules (torch, when installed) are not needed
        return _TABLE[name]
    have_torch = all([import_modules(f.modules) for f in families()])
    if name not in _TABLE:
        if not have_torch:
            raise ConfigError(f"{name!r} is not a torch-free class and torch is not installed; pip install torch to build it")
        known = ", ".join(sorted(_TABLE)) or "none"
        raise ConfigError(f"config names the class {name!r}, which funasr does not know (known: {known})")
    return _TABLE[name]


def build(name: str, **conf: Any) -> Any:
    """Instantiate the class registered under ``name`` with ``conf``."""
    return lookup(name)(**conf)
