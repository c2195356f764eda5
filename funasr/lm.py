"""N-gram language models for shallow fusion: ARPA or KenLM binary files, queried through ``kenlm``.

An LM's words are the ASR model's tokens (characters for the Chinese Paraformers): train it on text
split the way the model's tokenizer splits it (``funasr-train-lm``), or with KenLM's ``lmplz`` on text
written as space-separated tokens.
"""
from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

from funasr.errors import OptionError

LN10 = math.log(10.0)
END = "</s>"


@contextlib.contextmanager
def _stderr_muted() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null for the block (C++ writes to it directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def kenlm_installed() -> bool:
    """Whether the ``kenlm`` package (``pip install 'funasr[lm]'``) can be imported."""
    return importlib.util.find_spec("kenlm") is not None


class NgramLM:
    """An n-gram LM file (ARPA, ARPA.gz or KenLM binary); scores are natural-log probabilities."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        if not path.is_file():
            raise OptionError(f"lm_file={str(path)!r} is not a file; pass an ARPA (.arpa, .arpa.gz) or KenLM binary n-gram LM")
        try:
            import kenlm
        except ImportError as e:
            raise OptionError(f"lm_file={str(path)!r} needs the kenlm package: pip install 'funasr[lm]' (or pip install kenlm)") from e
        self._kenlm = kenlm
        try:
            config = kenlm.Config()
            config.show_progress = False
            with _stderr_muted():  # kenlm's C++ loader writes a hint about binary files to stderr for every ARPA
                self.model = kenlm.Model(str(path), config)
        except (OSError, RuntimeError) as e:
            raise OptionError(f"lm_file={str(path)!r} cannot be read as an n-gram LM ({e}); pass an ARPA or KenLM binary file") from e
        self.path = path
        self.order = int(self.model.order)

    def begin(self) -> Any:
        """The state after ``<s>``."""
        state = self._kenlm.State()
        self.model.BeginSentenceWrite(state)
        return state

    def score(self, state: Any, word: str) -> tuple[float, Any]:
        """log p(word | state) and the state after ``word``."""
        out = self._kenlm.State()
        return self.model.BaseScore(state, word, out) * LN10, out

    def end(self, state: Any) -> float:
        """log p(</s> | state)."""
        return self.score(state, END)[0]


@dataclass(frozen=True)
class LMFusion:
    """What a search needs to add an LM: the LM, its weight, the beam, and each token id's LM word (None: emits nothing)."""

    lm: NgramLM
    weight: float
    beam_size: int
    words: tuple[Optional[str], ...]


class LMCache:
    """Loaded LMs by path (and modification time), shared by the calls of one task."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, float], NgramLM] = {}
        self._lock = threading.Lock()

    def get(self, path: str | Path) -> NgramLM:
        """The LM in ``path``, loaded on first use."""
        p = Path(path)
        key = (str(p.resolve()), p.stat().st_mtime if p.is_file() else 0.0)
        with self._lock:
            if key not in self._loaded:
                self._loaded = {k: v for k, v in self._loaded.items() if k[0] != key[0]}
                self._loaded[key] = NgramLM(p)
            return self._loaded[key]


def lm_words(tokens: Sequence[str], silent: frozenset[int]) -> tuple[Optional[str], ...]:
    """Each token id's LM word: the token itself, None for the ids in ``silent`` (blank, <s>, </s>)."""
    return tuple(None if i in silent else t for i, t in enumerate(tokens))
