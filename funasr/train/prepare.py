"""Recipe helpers (torch-free): the CMVN file ``am.mvn`` and the character token list of a training set."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterable, Union

import numpy as np

from funasr import registry
from funasr.audio import Source, decode_source
from funasr.errors import FunASRError, OptionError

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ("<blank>", "<s>", "</s>")  # ids 0, 1, 2 as the Paraformer family expects; "<unk>" comes last


def compute_cmvn(jsonl_files: Iterable[Union[str, Path]], frontend: str, frontend_conf: dict[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(shift, scale) of the frontend's features (after LFR, before CMVN) over the audio of jsonl lists.

    shift = -mean and scale = 1 / std per dimension, as FunASR's compute_audio_cmvn writes them.
    """
    from funasr.data.jsonl import iter_jsonl

    conf = {k: v for k, v in frontend_conf.items() if k != "cmvn_file"}
    fe = registry.build(frontend, **conf)
    total = np.zeros(fe.output_size(), dtype=np.float64)
    squares = np.zeros(fe.output_size(), dtype=np.float64)
    frames = 0
    for path in jsonl_files:
        for lineno, entry, error in iter_jsonl(str(path)):
            if error or not isinstance(entry.get("source"), str):
                log.warning("%s line %d: %s; skipped", path, lineno, error or "no 'source'")
                continue
            try:
                wav = decode_source(Source(str(entry.get("key", lineno)), entry["source"]))
            except FunASRError as e:
                log.warning("%s line %d: %s; skipped", path, lineno, e)
                continue
            feats = fe.stack_frames(fe.fbank(wav)).astype(np.float64)
            total += feats.sum(0)
            squares += np.square(feats).sum(0)
            frames += len(feats)
    if frames == 0:
        raise OptionError("no audio could be read from the lists; CMVN needs at least one utterance")
    mean = total / frames
    std = np.sqrt(np.maximum(squares / frames - mean * mean, 1e-20))
    return (-mean).astype(np.float32), (1.0 / std).astype(np.float32)


def write_am_mvn(path: Union[str, Path], shift: np.ndarray, scale: np.ndarray) -> None:
    """Write Kaldi's nnet-text CMVN (``<AddShift>`` and ``<Rescale>``), the ``am.mvn`` the frontend reads."""
    d = len(shift)

    def row(values: np.ndarray) -> str:
        return "<LearnRateCoef> 0 [ " + " ".join(f"{v:.7g}" for v in values) + " ]"

    lines = ["<Nnet>", f"<Splice> {d} {d}", "[ 0 ]", f"<AddShift> {d} {d}", row(shift), f"<Rescale> {d} {d}", row(scale), "</Nnet>"]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_global_cmvn(path: Union[str, Path], shift: np.ndarray, scale: np.ndarray) -> None:
    """Write WeNet's JSON ``global_cmvn`` (``mean_stat``, ``var_stat``, ``frame_num``) of the same statistics."""
    import json

    mean = -shift.astype(np.float64)
    var = 1.0 / np.square(scale.astype(np.float64))
    stats = {"mean_stat": mean.tolist(), "var_stat": (var + mean * mean).tolist(), "frame_num": 1}
    Path(path).write_text(json.dumps(stats), encoding="utf-8")


def token_list(texts: Iterable[str]) -> list[str]:
    """FunASR's character dictionary: ``<blank> <s> </s>``, the sorted distinct characters, ``<unk>``."""
    chars = sorted({c for text in texts for c in text if not c.isspace()} - set(SPECIAL_TOKENS) - {"<unk>"})
    return [*SPECIAL_TOKENS, *chars, "<unk>"]
