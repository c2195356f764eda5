"""Training loss of CT-Transformer punctuation: imported by training only.

Cross-entropy of each word's punctuation class, weighted per class by ``model_conf.punc_weight``
(all 1.0 when absent), averaged over the words of the batch; padding (``IGNORE_ID``) and the
``model_conf.ignore_id`` class (``<unk>``, 0 in the released configs) are left out, as the
reference trains it. Dropout lives in the encoder (``encoder_conf.*dropout_rate``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from funasr.data import IGNORE_ID
from funasr.errors import ConfigError


class CTTransformerCriterion(nn.Module):
    """``forward(batch) -> (loss, stats, weight)`` of a ``CTTransformer`` over PuncDataset batches."""

    def __init__(self, model: nn.Module, cfg: dict[str, Any]) -> None:
        super().__init__()
        self.model = model
        conf = cfg.get("model_conf") or {}
        classes = len(conf["punc_list"])
        weight = [float(w) for w in conf.get("punc_weight") or [1.0] * classes]
        if len(weight) != classes:
            raise ConfigError(f"model_conf.punc_weight has {len(weight)} values for {classes} punctuation classes")
        self.register_buffer("weight", torch.tensor(weight), persistent=False)
        self.ignore_class = conf.get("ignore_id", 0)
        self.training_parts: tuple[str, ...] = ()

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float], float]:
        """Mean cross-entropy per labelled word, token accuracy, and the number of labelled words."""
        logits = self.model(batch["text"], batch["text_lengths"])  # (B, L, C)
        target = batch["punc"].masked_fill(batch["punc"] == self.ignore_class, IGNORE_ID)  # (B, L)
        valid = target != IGNORE_ID
        count = int(valid.sum())
        loss = F.cross_entropy(logits.float().transpose(1, 2), target, weight=self.weight, ignore_index=IGNORE_ID,
                               reduction="sum") / max(count, 1)
        acc = float((logits.argmax(-1)[valid] == target[valid]).float().mean()) if count else 0.0
        return loss, {"loss": float(loss.detach()), "acc": acc}, float(count)
