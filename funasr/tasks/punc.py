"""Punctuation task: texts in, ``{"key", "text", "punc_array"}`` out (FunASR's CT-Transformer output).

The network is a punctuation engine (``funasr.engines.PuncNet``, PyTorch or onnxruntime).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from funasr.audio import TextItem
from funasr.engines import PuncNet
from funasr.errors import ConfigError
from funasr.models.ct_transformer import text as rules
from funasr.options import PuncOptions


class PuncTask:
    """Runs a CTTransformer over texts with FunASR's windowing and text rules."""

    kind: ClassVar[str] = "punc"

    def __init__(self, net: PuncNet, frontend: Any, tokenizer: Any, cfg: dict[str, Any]) -> None:
        self.net = net
        self.frontend = frontend
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

    def __call__(self, items: list[TextItem], options: PuncOptions = PuncOptions()) -> list[dict[str, Any]]:
        """Punctuate each item; ``options.split_size`` words go through the model at a time."""
        return [self.punctuate(item, options.split_size) for item in items]

    def punctuate(self, item: TextItem, split_size: int = 20) -> dict[str, Any]:
        """``{"key", "text", "punc_array"}`` for one text; an empty text gives ``"text": ""`` and ``[]``."""
        words = rules.split_words(item.text, self.jieba)
        if not words:
            return {"key": item.key, "text": "", "punc_array": []}
        ids = self.tokenizer.tokens2ids(words)
        windows = rules.punctuate_words(words, ids, self.net.predict, self.punc_list, split_size, self.sentence_end_id)
        text, punc_array = rules.assemble(windows, self.punc_list, self.sentence_end_id)
        if self.jieba is not None:
            punc_array = rules.expand_to_chars(words, punc_array)
        return {"key": item.key, "text": text, "punc_array": punc_array}
