"""What the Paraformer family's PyTorch and onnxruntime engines share (numpy only): facts and the token choice."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from funasr.lm import LMFusion
from funasr.registry import family_of
from funasr.search import lm_beam_search

BLANK_ID, SOS, EOS = 0, 1, 2  # model_conf defaults of blank_id, sos, eos


def special_ids(cfg: dict[str, Any]) -> tuple[int, int, int]:
    """``(blank_id, sos, eos)`` of a resolved config."""
    conf = cfg.get("model_conf") or {}
    return int(conf.get("blank_id", BLANK_ID)), int(conf.get("sos", SOS)), int(conf.get("eos", EOS))


class ParaformerNet:
    """Base of both Paraformer engines: the facts they report and the token choice (greedy, or with an n-gram LM)."""

    takes_lm = True  # ``fused``: the decoder's positions searched with an n-gram LM

    def __init__(self, cfg: dict[str, Any]) -> None:
        self.drop = frozenset(special_ids(cfg))
        self.always_bias = family_of(cfg["model"]).always_bias

    def greedy(self, ids: np.ndarray, token_num: np.ndarray) -> list[list[int]]:
        """Argmax ids (B, N) -> per item its first ``token_num`` ids without blank/sos/eos."""
        return [[t for t in row[: int(n)].tolist() if t not in self.drop] for row, n in zip(ids, token_num)]

    def fused(self, log_probs: np.ndarray, token_num: np.ndarray, lm: LMFusion) -> list[list[int]]:
        """Log-probabilities (B, N, V) -> per item the ids of the LM beam search over its first ``token_num`` positions."""
        return [lm_beam_search(lp[: int(n)], lm.words, lm.lm, lm.weight, lm.beam_size) for lp, n in zip(log_probs, token_num)]

    def choose(self, log_probs: np.ndarray, token_num: np.ndarray, lm: Optional[LMFusion]) -> list[list[int]]:
        """Token ids per item: greedy without an LM, else ``fused``."""
        return self.greedy(log_probs.argmax(-1), token_num) if lm is None else self.fused(log_probs, token_num, lm)
