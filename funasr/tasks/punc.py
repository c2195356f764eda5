"""Punctuation task: texts in, ``{"key", "text", "punc_array"}`` out (FunASR's CT-Transformer output).

Torch is needed only by ``predict`` (the network call), so the onnxruntime runtime subclasses
``PuncTask`` and overrides that method alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from funasr.errors import ConfigError
from funasr.audio import TextItem
from funasr.models.ct_transformer import text as rules


class PuncTask:
    """Runs a CTTransformer over texts with FunASR's windowing and text rules."""

    def __init__(self, model: Any, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.cfg = cfg
        conf = cfg.get("model_conf") or {}
        if "punc_list" not in conf:
            raise ConfigError(f"{cfg.get('model_dir', 'the model')}/config.yaml lacks model_conf.punc_list")
        self.punc_list = list(conf["punc_list"])
        self.sentence_end_id = int(conf.get("sentence_end_id", 3))
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
        windows = rules.punctuate_words(words, ids, self.predict, self.punc_list, split_size, self.sentence_end_id)
        text, punc_array = rules.assemble(windows, self.punc_list, self.sentence_end_id)
        if self.jieba is not None:
            punc_array = rules.expand_to_chars(words, punc_array)
        return {"key": item.key, "text": text, "punc_array": punc_array}

    def predict(self, ids: np.ndarray) -> np.ndarray:
        """Punctuation class per token id (L,) -> (L,)."""
        import torch

        device = next(self.model.parameters()).device
        with torch.inference_mode():
            x = torch.from_numpy(ids).to(device)[None]  # (1, L)
            lens = torch.tensor([len(ids)], device=device)
            return self.model(x, lens)[0].argmax(-1).cpu().numpy()
