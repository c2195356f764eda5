"""CT-Transformer punctuation on onnxruntime: texts in, ``{"key", "text", "punc_array"}`` out."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Union

import numpy as np

from funasr.audio import TextItem
from funasr.errors import ConfigError
from funasr.models.ct_transformer import text as rules
from funasr.tokenizer import CharTokenizer
from funasr_onnx.session import ExportedModel


class CTTransformer(ExportedModel):
    """The exported CT-Transformer with funasr's windowing and text rules (``split_size`` words per window)."""

    task = "punc"

    def __init__(self, model_dir: Union[str, Path], **kwargs: Any) -> None:
        super().__init__(model_dir, **kwargs)
        self.net = self.graph("model")
        self.tokenizer = CharTokenizer(**(self.cfg.get("tokenizer_conf") or {}))
        conf = self.cfg.get("model_conf") or {}
        if "punc_list" not in conf:
            raise ConfigError(f"{self.cfg['model_dir']}/config.yaml lacks model_conf.punc_list")
        self.punc_list = list(conf["punc_list"])
        self.sentence_end_id = conf.get("sentence_end_id", 3)
        self.jieba = None
        user_dict = self.cfg.get("jieba_usr_dict")
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
        windows = rules.punctuate_words(words, ids, self._predict, self.punc_list, split_size, self.sentence_end_id)
        text, punc_array = rules.assemble(windows, self.punc_list, self.sentence_end_id)
        if self.jieba is not None:
            punc_array = rules.expand_to_chars(words, punc_array)
        return {"key": item.key, "text": text, "punc_array": punc_array}

    def _predict(self, ids: np.ndarray) -> np.ndarray:
        (logits,) = self.net(inputs=ids.astype(np.int32)[None], text_lengths=np.array([len(ids)], dtype=np.int32))
        return logits[0].argmax(-1)
