"""Tasks: items -> FunASR result dicts around an engine (``funasr.engines``). Torch-free.

``Task(net, frontend, tokenizer, cfg)``; the family of ``cfg["model"]`` names the task class.
"""
from __future__ import annotations

from typing import Any

from funasr import registry


def frontend_and_tokenizer(cfg: dict[str, Any]) -> tuple[Any, Any]:
    """The frontend and tokenizer a resolved config names (None where it names none)."""
    frontend = registry.build(cfg["frontend"], **(cfg.get("frontend_conf") or {})) if cfg.get("frontend") else None
    tokenizer = registry.build(cfg["tokenizer"], **(cfg.get("tokenizer_conf") or {})) if cfg.get("tokenizer") else None
    return frontend, tokenizer


def make_task(net: Any, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> Any:
    """The task of ``cfg["model"]``'s family around the engine ``net``."""
    return registry.resolve(registry.family_of(cfg["model"]).task)(net, frontend, tokenizer, cfg)
