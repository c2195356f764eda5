"""AudioDataset: jsonl lines -> (features, token ids) by the inference code path, and the collate into a batch.

Bad data never stops training. Lines found bad while indexing (not JSON, no source/target, an empty
transcript, a character not in the token list, a missing audio file) are warned about with the jsonl
path, line number and key, and left out of the index, so the sampler never sees them. Audio that
fails to decode is found in the worker: ``__getitem__`` warns once and returns None, and
``collate`` drops it; a batch whose items all failed is a batch with ``keys == []`` (zero-size
tensors) that the trainer skips. A ``source_len`` that disagrees with the decoded audio is warned
about and the real length is used (the sampler has batched by the list's value). ``bad_data()``
counts every case by reason, across worker processes.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np
import soxr
import torch

from funasr.audio import SAMPLE_RATE, Source, decode_source
from funasr.data import IGNORE_ID
from funasr.data.jsonl import JsonlIndex, build_index, list_files, resolve_source, samples_to_source_len
from funasr.data.sampler import world
from funasr.errors import FunASRError, OptionError
from funasr.hub import is_url

log = logging.getLogger(__name__)

# Codes of items that fail in a worker (kept per item in shared memory: 0 = not failed)
_LOAD_REASONS = ("bad_audio", "too_long", "too_short", "source_len_fixed")
_FIXED = _LOAD_REASONS.index("source_len_fixed") + 1
SOURCE_LEN_SLACK = 1  # units (10 ms) a list's source_len may differ from the audio before it is corrected


class AudioDataset(torch.utils.data.Dataset):
    """Items of FunASR jsonl lists: ``{"key", "speech" (T, D) float32, "text" (L,) int64}``, or None for bad audio."""

    def __init__(
        self,
        data_list: Union[str, Sequence[str]],
        frontend: Any,
        tokenizer: Any,
        is_training: bool = True,
        min_source_length: int = 0,
        max_source_length: int = 2048,
        min_target_length: int = 0,
        max_target_length: int = 2048,
        max_token_length: int = 2200,
        speed_perturb: Optional[Sequence[float]] = None,
        seed: int = 0,
    ) -> None:
        self.frontend, self.tokenizer = frontend, tokenizer
        self.is_training, self.seed = is_training, int(seed)
        self.limits = (min_source_length, max_source_length, min_target_length, max_target_length, max_token_length)
        self.speeds = [float(s) for s in speed_perturb] if speed_perturb else []
        if any(not 0.5 <= s <= 2.0 for s in self.speeds):
            raise OptionError(f"speed_perturb={list(speed_perturb)} has a factor outside 0.5..2.0; use e.g. [0.9, 1.0, 1.1]")
        self.index: JsonlIndex = build_index(list_files(data_list), self._check)
        level = logging.WARNING if world()[0] == 0 else logging.DEBUG  # every rank indexes the same lists: report once
        for r in self.index.rejected:
            if r.reason != "length_filter":
                log.log(level, "%s line %d (key %s): %s; skipped", r.path, r.lineno, r.key or "?", r.message)
        self._failed = torch.zeros(len(self.index), dtype=torch.int8).share_memory_()
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()
        log.info("%s: %d utterances, %s", ", ".join(self.index.paths), len(self.index), self.bad_data() or "no bad data")

    @classmethod
    def from_conf(cls, data_list: Any, frontend: Any, tokenizer: Any, conf: dict, is_training: bool = True,
                  seed: int = 0) -> "AudioDataset":
        """A dataset from FunASR's ``dataset_conf`` (``speed_perturb`` there or in ``preprocessor_speech_conf``)."""
        keys = ("min_source_length", "max_source_length", "min_target_length", "max_target_length", "max_token_length")
        speeds = conf.get("speed_perturb") or (conf.get("preprocessor_speech_conf") or {}).get("speed_perturb")
        return cls(data_list, frontend, tokenizer, is_training, speed_perturb=speeds, seed=seed,
                   **{k: conf[k] for k in keys if k in conf})

    def _check(self, entry: dict, path: str, src: int, tgt: int) -> Optional[tuple[str, str]]:
        """Why a jsonl object cannot be used while indexing, as ``(reason, message)``; None if it can."""
        source, target = entry.get("source"), entry.get("target")
        if not isinstance(source, str) or not source.strip():
            return "bad_json", "no 'source' audio path"
        if not isinstance(target, str):
            return "bad_json", "no 'target' text"
        if not target.strip():
            return "empty_target", "the transcript is empty"
        unknown = sorted({t for t in self.tokenizer.text2tokens(target) if t not in self.tokenizer.token2id or t == self.tokenizer.unk_symbol})
        if unknown:
            return "unknown_tokens", f"the transcript has tokens not in the token list: {' '.join(unknown[:10])}"
        if not is_url(source) and not os.path.isfile(resolve_source(source, path)):
            return "bad_audio", f"the audio file {source} does not exist"
        lo_src, hi_src, lo_tgt, hi_tgt, hi_tok = self.limits
        if not (lo_src <= src <= hi_src and lo_tgt <= tgt <= hi_tgt and src + tgt <= hi_tok):
            return "length_filter", f"source_len {src} / target_len {tgt} outside the dataset_conf limits"
        return None

    def __len__(self) -> int:
        return len(self.index)

    def get_source_len(self, i: int) -> int:
        """The list's ``source_len`` of item ``i`` (10 ms units)."""
        return int(self.index.source_len[i])

    def get_target_len(self, i: int) -> int:
        """The list's ``target_len`` of item ``i``."""
        return int(self.index.target_len[i])

    def set_epoch(self, epoch: int) -> None:
        """The epoch that seeds speed perturbation (seen by worker processes too)."""
        self._epoch[0] = int(epoch)

    def feature_dim(self) -> int:
        """Width D of ``speech``."""
        return int(self.frontend.output_size())

    def bad_data(self) -> dict[str, int]:
        """Counts of skipped (or corrected: ``source_len_fixed``) utterances by reason; in this process and its workers."""
        counts: dict[str, int] = {}
        for r in self.index.rejected:
            counts[r.reason] = counts.get(r.reason, 0) + 1
        failed = np.bincount(self._failed.numpy(), minlength=len(_LOAD_REASONS) + 1)
        for code, reason in enumerate(_LOAD_REASONS, 1):
            if failed[code]:
                counts[reason] = counts.get(reason, 0) + int(failed[code])
        return counts

    def _fail(self, i: int, reason: str, message: str) -> None:
        """Record that item ``i`` failed (or was corrected) in a worker, warning the first time (a failure replaces a correction)."""
        if int(self._failed[i]) in (0, _FIXED) and _LOAD_REASONS.index(reason) + 1 != int(self._failed[i]):
            self._failed[i] = _LOAD_REASONS.index(reason) + 1
            entry_key = self.index.entry(i).get("key", "?")
            log.warning("%s (key %s): %s%s", self.index.where(i), entry_key, message,
                        "" if reason == "source_len_fixed" else "; skipped")

    def waveform(self, i: int, source: str, key: str) -> Optional[np.ndarray]:
        """The 16 kHz waveform of item ``i`` (speed-perturbed in training), or None if it cannot be used."""
        if int(self._failed[i]) not in (0, _FIXED):
            return None
        try:
            wav = decode_source(Source(key, source))
        except FunASRError as e:
            self._fail(i, "bad_audio", f"cannot read the audio: {e}")
            return None
        real, listed = samples_to_source_len(len(wav)), self.get_source_len(i)
        if abs(real - listed) > SOURCE_LEN_SLACK:
            self._fail(i, "source_len_fixed", f"source_len {listed} in the list, but the audio is {real}; using {real}")
        if real > self.limits[1]:
            self._fail(i, "too_long", f"the audio ({real} x 10 ms) is over max_source_length {self.limits[1]}")
            return None
        if self.is_training and self.speeds:
            rng = np.random.default_rng([self.seed, int(self._epoch[0]), i])
            speed = self.speeds[int(rng.integers(len(self.speeds)))]
            if speed != 1.0:  # sox's "speed": resampled as if recorded at speed x fs
                wav = soxr.resample(wav, SAMPLE_RATE * speed, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
        return wav

    def __getitem__(self, i: int) -> Optional[dict]:
        entry = self.index.entry(i)
        key = str(entry.get("key", Path(entry["source"]).stem))
        wav = self.waveform(i, resolve_source(entry["source"], self.index.paths[self.index.file[i]]), key)
        if wav is None:
            return None
        feats = self.frontend.extract(wav)
        if len(feats) == 0:
            self._fail(i, "too_short", "the audio is shorter than one feature frame")
            return None
        ids = self.tokenizer.tokens2ids(self.tokenizer.text2tokens(entry["target"]))
        return {"key": key, "speech": torch.from_numpy(np.ascontiguousarray(feats)), "text": torch.tensor(ids, dtype=torch.int64)}

    def collate(self, items: list[Optional[dict]]) -> dict:
        """The batch of funasr.data's layout from the items that loaded; none loaded gives ``keys == []``."""
        return collate(items, self.feature_dim())


def collate(items: list[Optional[dict]], feature_dim: int) -> dict:
    """Pad items into a batch (``speech`` with 0.0, ``text`` with IGNORE_ID), dropping None items."""
    items = [item for item in items if item is not None]
    speech_lengths = torch.tensor([len(item["speech"]) for item in items], dtype=torch.int64)
    text_lengths = torch.tensor([len(item["text"]) for item in items], dtype=torch.int64)
    speech = torch.zeros(len(items), int(speech_lengths.max()) if items else 0, feature_dim, dtype=torch.float32)
    text = torch.full((len(items), int(text_lengths.max()) if items else 0), IGNORE_ID, dtype=torch.int64)
    for b, item in enumerate(items):
        speech[b, : len(item["speech"])] = item["speech"]
        text[b, : len(item["text"])] = item["text"]
    return {
        "keys": [item["key"] for item in items],
        "speech": speech,  # (B, T, D)
        "speech_lengths": speech_lengths,  # (B,)
        "text": text,  # (B, L)
        "text_lengths": text_lengths,  # (B,)
    }
