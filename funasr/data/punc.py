"""PuncDataset: punctuated text -> (word ids, punctuation class per word), for CT-Transformer training.

The input is text files with one punctuated text per line (``.txt``), or jsonl lists whose objects
carry it under ``text`` (or ``target``). A line is cut into the model's words by the inference code
path (:func:`funasr.models.ct_transformer.text.split_words`, characters and ASCII runs), and each
word is labelled with the mark of ``punc_list`` written right after it (``_`` when none). Marks
outside ``punc_list`` map to the nearest one (``!`` ``！`` ``;`` ``；`` to ``。``, ``,`` ``:`` ``：`` to
``，``, ``?`` to ``？``); any other symbol is dropped. Words missing from the token list become
``<unk>`` as at inference.

Inference reads windows of ``split_size`` new words after the words carried from the window
before (those after its last sentence end), so training items are windows too: from a sentence
start drawn at random (seeded by ``seed``, epoch and item) to 1-3 times ``split_size`` words
later (``max_words`` at most), ending mid-sentence as inference windows do. Validation uses the
draws of epoch 0. A line with no words is reported and skipped.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch

from funasr.data import IGNORE_ID
from funasr.errors import OptionError
from funasr.models.ct_transformer.text import NO_PUNC, split_words

log = logging.getLogger(__name__)

# Marks written in texts, as the class of ``punc_list`` they stand for.
MARK_CLASS = {"，": "，", ",": "，", "：": "，", ":": "，", "。": "。", "！": "。", "!": "。", "；": "。", ";": "。",
              "？": "？", "?": "？", "、": "、"}
SENTENCE_ENDS = ("。", "？")


@dataclass
class Lengths:
    """What the batch sampler reads of a dataset: per-item lengths (words, upper bounds of the windows)."""

    source_len: np.ndarray
    target_len: np.ndarray


def label_words(text: str, punc_list: Sequence[str]) -> tuple[list[str], list[int]]:
    """The words of a punctuated ``text`` and the class id (in ``punc_list``) of the mark after each."""
    classes = {mark: punc_list.index(name) for mark, name in MARK_CLASS.items() if name in punc_list}
    none = punc_list.index(NO_PUNC)
    words: list[str] = []
    labels: list[int] = []
    piece = ""
    for ch in text + "\n":
        if ch in classes or ch == "\n":
            new = split_words(piece)
            words.extend(new)
            labels.extend([none] * len(new))
            if ch in classes and labels:
                labels[-1] = classes[ch]
            piece = ""
        elif ch.isalnum() or ch.isspace() or ch == "'":
            piece += ch
    return words, labels


class PuncDataset(torch.utils.data.Dataset):
    """Items ``{"key", "text" (L,) int64 word ids, "punc" (L,) int64 class ids}`` of punctuated text lines."""

    def __init__(
        self,
        data_list: Union[str, Sequence[str]],
        tokenizer: Any,
        punc_list: Sequence[str],
        is_training: bool = True,
        split_size: int = 20,
        max_words: int = 100,
        seed: int = 0,
    ) -> None:
        if split_size < 1 or max_words < split_size:
            raise OptionError(f"dataset_conf split_size={split_size} / max_words={max_words}: need 1 <= split_size <= max_words")
        if NO_PUNC not in punc_list:
            raise OptionError(f"model_conf.punc_list {list(punc_list)} lacks the no-punctuation class {NO_PUNC!r}")
        self.tokenizer, self.punc_list = tokenizer, list(punc_list)
        self.is_training, self.split_size, self.max_words, self.seed = is_training, split_size, max_words, int(seed)
        self.keys: list[str] = []
        self.ids: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.starts: list[np.ndarray] = []  # sentence starts of each item (word positions)
        self.skipped = 0
        self.paths = [str(data_list)] if isinstance(data_list, (str, Path)) else [str(p) for p in data_list]
        for path in self.paths:
            if not Path(path).is_file():
                raise OptionError(f"punctuation text {path!r} does not exist; pass a text file (a punctuated text per line) or a jsonl list")
            self._read(path)
        if not self.ids:
            raise OptionError(f"no usable punctuated text in {', '.join(self.paths)}")
        bound = np.array([min(len(i), max_words) for i in self.ids], dtype=np.int64)
        self.index = Lengths(bound, bound)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        log.info("%s: %d texts, %d words%s", ", ".join(self.paths), len(self.ids), sum(len(i) for i in self.ids),
                 f", {self.skipped} empty lines skipped" if self.skipped else "")

    def _read(self, path: str) -> None:
        jsonl = path.endswith(".jsonl")
        with open(path, encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                key = f"{Path(path).stem}-{lineno}"
                text = line.strip()
                if jsonl and text:
                    try:
                        entry = json.loads(text)
                    except json.JSONDecodeError as e:
                        log.warning("%s line %d: not JSON (%s); skipped", path, lineno, e)
                        self.skipped += 1
                        continue
                    key, text = str(entry.get("key", key)), str(entry.get("text", entry.get("target", "")))
                words, labels = label_words(text, self.punc_list)
                if not words:
                    if text:
                        log.warning("%s line %d (key %s): no words; skipped", path, lineno, key)
                    self.skipped += 1
                    continue
                ends = {i + 1 for i, c in enumerate(labels) if self.punc_list[c] in SENTENCE_ENDS and i + 1 < len(words)}
                self.keys.append(key)
                self.ids.append(np.asarray(self.tokenizer.tokens2ids(words), dtype=np.int64))
                self.labels.append(np.asarray(labels, dtype=np.int64))
                self.starts.append(np.asarray(sorted({0} | ends), dtype=np.int64))

    def __len__(self) -> int:
        return len(self.ids)

    def set_epoch(self, epoch: int) -> None:
        """The epoch that seeds the windows (seen by worker processes too)."""
        self._epoch[0] = int(epoch)

    def bad_data(self) -> dict[str, int]:
        """Counts of skipped lines."""
        return {"empty_text": self.skipped} if self.skipped else {}

    def window(self, i: int) -> tuple[int, int]:
        """The word span ``[start, end)`` of item ``i`` this epoch."""
        epoch = int(self._epoch[0]) if self.is_training else 0
        rng = np.random.default_rng([self.seed, epoch, i])
        start = int(self.starts[i][rng.integers(len(self.starts[i]))])
        size = int(rng.integers(self.split_size, min(3 * self.split_size, self.max_words) + 1))
        return start, min(start + size, len(self.ids[i]))

    def __getitem__(self, i: int) -> dict:
        start, end = self.window(i)
        return {"key": self.keys[i], "text": torch.from_numpy(self.ids[i][start:end]),
                "punc": torch.from_numpy(self.labels[i][start:end])}

    def collate(self, items: list[Optional[dict]]) -> dict:
        """``text`` (B, L) padded with 0, ``punc`` (B, L) padded with IGNORE_ID, ``text_lengths`` (B,)."""
        items = [item for item in items if item is not None]
        lengths = torch.tensor([len(item["text"]) for item in items], dtype=torch.int64)
        width = int(lengths.max()) if items else 0
        text = torch.zeros(len(items), width, dtype=torch.int64)
        punc = torch.full((len(items), width), IGNORE_ID, dtype=torch.int64)
        for b, item in enumerate(items):
            text[b, : lengths[b]] = item["text"]
            punc[b, : lengths[b]] = item["punc"]
        return {"keys": [item["key"] for item in items], "text": text, "text_lengths": lengths, "punc": punc}


def punc_dataset(cfg: dict[str, Any], data_list: Any, frontend: Any, tokenizer: Any, is_training: bool = True) -> PuncDataset:
    """The dataset a training config describes: ``dataset_conf`` (``split_size``, ``max_words``, ``seed``) and ``model_conf.punc_list``."""
    conf = cfg.get("dataset_conf") or {}
    punc_list = (cfg.get("model_conf") or {}).get("punc_list")
    if not punc_list:
        raise OptionError("punctuation training needs model_conf.punc_list")
    keys = ("split_size", "max_words", "seed")
    return PuncDataset(data_list, tokenizer, punc_list, is_training, **{k: conf[k] for k in keys if k in conf})
