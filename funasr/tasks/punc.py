"""Punctuation tasks: texts in, ``{"key", "text", "punc_array"}`` out (FunASR's CT-Transformer output).

``PuncTask`` punctuates whole texts; ``RealtimePuncTask`` continues a text stream call by call.
The network is a punctuation engine (``funasr.engines.PuncNet`` / ``RealtimePuncNet``, PyTorch or onnxruntime).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from funasr.audio import TextItem
from funasr.engines import PuncNet, RealtimePuncNet
from funasr.errors import ConfigError, OptionError
from funasr.models.ct_transformer import text as rules
from funasr.models.ct_transformer_streaming import text as realtime
from funasr.options import PuncOptions
from funasr.streaming import PuncStream, stream_in_cache


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


class RealtimePuncTask(PuncTask):
    """FunASR's realtime punctuation (``CTTransformerStreaming``): each call's text continues the stream's earlier ones.

    All state lives in a ``funasr.streaming.PuncStream`` (``create_stream``, ``stream.accept_text``,
    ``decode_stream`` / ``decode_streams``, the latter batching the streams' windows); FunASR's
    ``generate(input=piece, cache={})`` keeps one in the dict. Words are characters and ASCII
    runs (no jieba, as in FunASR).
    """

    net: RealtimePuncNet

    def __call__(self, items: list[TextItem], options: PuncOptions = PuncOptions()) -> list[dict[str, Any]]:
        """Punctuate each item; with ``options.cache`` (one item per call) the text continues the cached stream."""
        if options.cache is None:
            streams = [self.create_stream() for _ in items]
        elif len(items) != 1:
            raise OptionError(f"realtime punctuation with cache= takes one text per call, got {len(items)}; call once per piece")
        else:
            streams = [stream_in_cache(options.cache, PuncStream, PuncStream)]
        for stream, item in zip(streams, items):
            stream.accept_text(item.text)
        return [{"key": item.key, **out} for item, out in zip(items, self.decode_streams(streams, options.split_size))]

    def create_stream(self) -> PuncStream:
        """A new text stream (nothing carried)."""
        return PuncStream()

    def decode_stream(self, stream: PuncStream, split_size: int = 20) -> dict[str, Any]:
        """Punctuate the text accepted since the last decode: ``{"text", "punc_array"}`` (FunASR's per-call result)."""
        return self.decode_streams([stream], split_size)[0]

    def decode_streams(self, streams: list[PuncStream], split_size: int = 20) -> list[dict[str, Any]]:
        """``decode_stream`` of each stream, their windows batched into one network call per round.

        A stream given no text since its last decode gets ``{"text": "", "punc_array": []}`` and is left as it is.
        """
        idle = {i for i, s in enumerate(streams) if not s.pending}
        out = iter(self._decode([s for i, s in enumerate(streams) if i not in idle], split_size))
        return [{"text": "", "punc_array": []} if i in idle else next(out) for i in range(len(streams))]

    def _decode(self, streams: list[PuncStream], split_size: int) -> list[dict[str, Any]]:
        words = [realtime.call_words(s.pre_text, s.take_pending()) for s in streams]
        steps = [rules.label_windows(w, self.tokenizer.tokens2ids(w), self.punc_list, split_size, self.sentence_end_id) for w in words]
        carried = [len(s.pre_text) for s in streams]
        windows = rules.run_windows(steps, lambda which, ids: self.net.predict_batch(ids, [carried[i] for i in which]))
        out = []
        for stream, n, wins in zip(streams, carried, windows):
            result = realtime.assemble_call(n, wins, self.punc_list)
            if result.pre_text is not None:
                stream.pre_text = result.pre_text
            out.append({"text": result.text, "punc_array": result.punc_array})
        return out
