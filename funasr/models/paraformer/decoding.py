"""What the Paraformer family's PyTorch and onnxruntime engines share (numpy only): facts and greedy tokens."""
from __future__ import annotations

from typing import Any

import numpy as np

from funasr.registry import family_of

BLANK_ID, SOS, EOS = 0, 1, 2  # model_conf defaults of blank_id, sos, eos


def special_ids(cfg: dict[str, Any]) -> tuple[int, int, int]:
    """``(blank_id, sos, eos)`` of a resolved config."""
    conf = cfg.get("model_conf") or {}
    return int(conf.get("blank_id", BLANK_ID)), int(conf.get("sos", SOS)), int(conf.get("eos", EOS))


class ParaformerNet:
    """Base of both Paraformer engines: the facts they report and the greedy token choice."""

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.drop = frozenset(special_ids(cfg))
        self.always_bias = family_of(cfg["model"]).always_bias

    def greedy(self, ids: np.ndarray, token_num: np.ndarray) -> list[list[int]]:
        """Argmax ids (B, N) -> per item its first ``token_num`` ids without blank/sos/eos."""
        return [[t for t in row[: int(n)].tolist() if t not in self.drop] for row, n in zip(ids, token_num)]
