"""Token list, seg_dict and id <-> token conversion (CharTokenizer of config.yaml)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from funasr.errors import ConfigError
from funasr.hotword import seg_tokenize
from funasr.registry import register


def read_token_list(path: Union[str, Path]) -> list[str]:
    """Tokens from ``tokens.json`` (a JSON list) or ``tokens.txt`` (one per line)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
        tokens = json.loads(text) if path.suffix == ".json" else None
    except (OSError, ValueError) as e:  # ValueError: not UTF-8, or not JSON
        raise ConfigError(f"cannot read the token list {path}: {e}; re-download the model or fix the file") from e
    if path.suffix == ".json":
        if not isinstance(tokens, list):
            raise ConfigError(f"{path} must hold a JSON list of tokens; re-download the model or fix the file")
        return [str(t) for t in tokens]
    return [line.split()[0] if line.split() else line for line in text.splitlines()]


def read_seg_dict(path: Union[str, Path]) -> dict[str, list[str]]:
    """``seg_dict`` lines ``word piece1 piece2 ...`` -> {word: pieces}."""
    out: dict[str, list[str]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the seg_dict {path}: {e}; re-download the model or fix the file") from e
    for line in lines:
        parts = line.split()
        if len(parts) >= 2:
            out[parts[0]] = parts[1:]
    return out


@register()
class CharTokenizer:
    """Maps token ids to token strings and back, with the model's ``seg_dict`` when present."""

    def __init__(
        self,
        token_list: Union[str, Path, list[str], None] = None,
        unk_symbol: str = "<unk>",
        seg_dict: Union[str, Path, None] = None,
        **_: Any,
    ) -> None:
        if token_list is None:
            raise ConfigError("the tokenizer needs tokenizer_conf.token_list (tokens.json in the model directory)")
        self.token_list = list(token_list) if isinstance(token_list, list) else read_token_list(token_list)
        self.token2id = {t: i for i, t in enumerate(self.token_list)}
        self.unk_symbol = unk_symbol
        self.unk_id = self.token2id.get(unk_symbol, len(self.token_list) - 1)
        self.seg_dict: Optional[dict[str, list[str]]] = (
            read_seg_dict(seg_dict) if seg_dict and Path(seg_dict).is_file() else None
        )

    def __len__(self) -> int:
        return len(self.token_list)

    def ids2tokens(self, ids: Iterable[int]) -> list[str]:
        """Token strings of ``ids``."""
        return [self.token_list[int(i)] for i in ids]

    def text2tokens(self, text: str) -> list[str]:
        """Tokens of a transcript: ``seg_dict`` pieces of its words when the model has one, else its characters (spaces dropped)."""
        if self.seg_dict is not None:
            return seg_tokenize(text.split(), self.seg_dict)
        return [c for c in text if not c.isspace()]

    def tokens2ids(self, tokens: Iterable[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens map to the ``<unk>`` id."""
        return [self.token2id.get(t, self.unk_id) for t in tokens]
