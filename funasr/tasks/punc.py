"""Punctuation task: texts in, ``{"key", "text", "punc_array"}`` out (FunASR's CT-Transformer output)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from funasr.errors import ConfigError
from funasr.models.ct_transformer import text as rules
from funasr.audio import TextItem


class PuncTask:
    """Runs a CTTransformer over texts with FunASR's windowing and text rules."""

    def __init__(self, model: Any, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        self.jieba = None
        user_dict = cfg.get("jieba_usr_dict")
        if user_dict:
            if not Path(user_dict).is_file():
                raise ConfigError(f"jieba_usr_dict {user_dict} does not exist; fix the path or leave it out")
            self.jieba = rules.load_jieba(user_dict)

    def __call__(self, items: list[TextItem], split_size: int = 20, **_: Any) -> list[dict[str, Any]]:
        """Punctuate each item; ``split_size`` words go through the model at a time."""
        return [self.punctuate(item, split_size) for item in items]

    def punctuate(self, item: TextItem, split_size: int = 20) -> dict[str, Any]:
        """``{"key", "text", "punc_array"}`` for one text; an empty text gives ``"text": ""`` and ``[]``."""
        words = rules.split_words(item.text, self.jieba)
        if not words:
            return {"key": item.key, "text": "", "punc_array": []}
        ids = self.tokenizer.tokens2ids(words)
        windows = rules.punctuate_words(
            words, ids, self._predict, self.model.punc_list, split_size, self.model.sentence_end_id
        )
        text, punc_array = rules.assemble(windows, self.model.punc_list, self.model.sentence_end_id)
        if self.jieba is not None:
            punc_array = rules.expand_to_chars(words, punc_array)
        return {"key": item.key, "text": text, "punc_array": punc_array}

    @torch.inference_mode()
    def _predict(self, ids: np.ndarray) -> np.ndarray:
        device = next(self.model.parameters()).device
        x = torch.from_numpy(ids).to(device)[None]  # (1, L)
        lens = torch.tensor([len(ids)], device=device)
        return self.model(x, lens)[0].argmax(-1).cpu().numpy()
