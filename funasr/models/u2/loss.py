"""Training loss of the U2 family (WeNet's hybrid CTC/attention loss): imported by training only.

loss = ctc_weight·L_ctc + (1 - ctc_weight)·L_att, with, for U2++ (``bitransformer``),
L_att = (1 - reverse_weight)·L_left + reverse_weight·L_right, as WeNet trains it:

- the decoders read ``<sos>`` + tokens (padded with ``<eos>``) and predict tokens + ``<eos>``; the
  right-to-left decoder does the same on each utterance's tokens reversed;
- L_left / L_right are label-smoothed cross-entropy (``lsm_weight``), per token when
  ``length_normalized_loss`` else per utterance; L_ctc is CTC summed over the batch / batch size;
- dynamic chunk training (``encoder_conf.use_dynamic_chunk``): each training batch draws a chunk
  size, full context with probability ~1/2, else 1..25 frames, and with ``use_dynamic_left_chunk``
  a random number of left chunks, so one model serves every decoding chunk size; a static
  ``static_chunk_size`` applies in the encoder itself;
- SpecAugment (WeNet's ``spec_aug``: ``num_f_mask`` bands of 1..``max_f`` mel bins and ``num_t_mask``
  bands of 1..``max_t`` frames set to 0 within each utterance, before the model's CMVN).

In eval mode there is no chunk draw (full context) and no SpecAugment: the validation loss is deterministic.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from funasr.data import IGNORE_ID
from funasr.errors import ConfigError
from funasr.models.paraformer.loss import batch_tensors, ctc_loss, label_smoothing_loss, ratio, token_accuracy
from funasr.registry import register

DEFAULTS = {"ctc_weight": 0.5, "reverse_weight": 0.0, "lsm_weight": 0.0, "length_normalized_loss": False}
MAX_CHUNK = 25  # WeNet's largest training chunk (1 s of 4x-subsampled frames)


@register()
class SpecAug(nn.Module):
    """WeNet's ``spec_aug`` on a batch of raw fbank (B, T, D): per utterance, frequency then time bands set to 0.

    Takes ``spec_aug_conf`` as keyword arguments. Time warping (``max_w``) is not implemented.
    """

    def __init__(self, num_t_mask: int = 2, num_f_mask: int = 2, max_t: int = 50, max_f: int = 10, max_w: int = 0) -> None:
        super().__init__()
        if max_w:
            raise ConfigError(f"spec_aug_conf.max_w={max_w}: time warping is not supported; set max_w: 0")
        for name, value in (("num_t_mask", num_t_mask), ("num_f_mask", num_f_mask), ("max_t", max_t), ("max_f", max_f)):
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name.startswith("num") else 1):
                raise ConfigError(f"spec_aug_conf.{name}={value!r}: pass an integer >= {0 if name.startswith('num') else 1}")
        self.num_t_mask, self.num_f_mask, self.max_t, self.max_f = num_t_mask, num_f_mask, max_t, max_f

    def forward(self, x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
        """Features (B, T, D) and lengths (B,) -> a masked copy (bands inside each utterance's frames)."""
        x = x.clone()
        dim = x.size(2)
        for b in range(x.size(0)):
            frames = int(lens[b])
            for _ in range(self.num_f_mask):
                start = int(torch.randint(0, dim, ()))
                x[b, :frames, start : start + int(torch.randint(1, self.max_f + 1, ()))] = 0.0
            for _ in range(self.num_t_mask):
                start = int(torch.randint(0, max(frames, 1), ()))
                x[b, start : min(frames, start + int(torch.randint(1, self.max_t + 1, ()))), :] = 0.0
        return x


def sample_chunk(frames: int, dynamic_left: bool) -> tuple[int, int]:
    """WeNet's dynamic chunk draw for a batch of ``frames`` encoder frames -> (chunk size (-1: full), left chunks (-1: all))."""
    if frames < 2:
        return -1, -1
    chunk = int(torch.randint(1, frames, ()))
    if chunk > frames // 2:
        return -1, -1
    chunk = chunk % MAX_CHUNK + 1
    left = int(torch.randint(0, max(1, (frames - 1) // chunk), ())) if dynamic_left else -1
    return chunk, left


def decoder_io(text: torch.Tensor, lens: torch.Tensor, sos: int, eos: int, reverse: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets (B, L) padded with IGNORE_ID -> decoder input ``<sos>`` + tokens padded with ``eos`` (B, L+1) and
    output tokens + ``<eos>`` padded with IGNORE_ID (B, L+1); each utterance's tokens reversed when ``reverse``."""
    b, length = text.shape
    pos = torch.arange(length, device=text.device).unsqueeze(0)  # (1, L)
    valid = pos < lens.unsqueeze(1)
    if reverse:
        text = torch.gather(text, 1, ((lens.unsqueeze(1) - 1 - pos) * valid).clamp(min=0))
    tokens = torch.where(valid, text, torch.full_like(text, eos))
    ys_in = torch.cat([torch.full((b, 1), sos, dtype=text.dtype, device=text.device), tokens], dim=1)
    ys_out = torch.cat([torch.where(valid, text, torch.full_like(text, IGNORE_ID)),
                        torch.full((b, 1), IGNORE_ID, dtype=text.dtype, device=text.device)], dim=1)
    ys_out[torch.arange(b, device=text.device), lens] = eos
    return ys_in, ys_out


def load_global_cmvn(model: nn.Module, path: Path) -> None:
    """Set the encoder's CMVN buffers from WeNet's JSON ``global_cmvn`` (mean_stat, var_stat, frame_num)."""
    stats = json.loads(path.read_text(encoding="utf-8"))
    mean = torch.tensor(stats["mean_stat"], dtype=torch.float64) / stats["frame_num"]
    var = (torch.tensor(stats["var_stat"], dtype=torch.float64) / stats["frame_num"] - mean * mean).clamp(min=1e-20)
    cmvn = model.encoder.global_cmvn
    cmvn.mean.copy_(mean.float())
    cmvn.istd.copy_((1.0 / var.sqrt()).float())


class U2Criterion(nn.Module):
    """``forward(batch) -> (loss, stats, weight)`` for a U2 / U2++ ``model`` under a WeNet ``cfg`` (model_conf, encoder_conf).

    A model without a checkpoint (training from scratch) takes its CMVN from the folder's ``global_cmvn``.
    ``weight`` is the batch size, or the number of target tokens (+ ``<eos>``) when length-normalised.
    """

    training_parts: tuple[str, ...] = ()

    def __init__(self, model: nn.Module, cfg: dict[str, Any]) -> None:
        super().__init__()
        conf = {**DEFAULTS, **(cfg.get("model_conf") or {})}
        self.model = model
        self.ctc_weight = ratio("ctc_weight", conf["ctc_weight"])
        self.reverse_weight = ratio("reverse_weight", conf["reverse_weight"])
        self.lsm_weight = ratio("lsm_weight", conf["lsm_weight"])
        self.length_normalized = bool(conf["length_normalized_loss"])
        if self.reverse_weight > 0 and not model.bidirectional:
            raise ConfigError("model_conf.reverse_weight > 0 needs the bitransformer decoder (U2++); set it to 0 for U2")
        enc = cfg.get("encoder_conf") or {}
        self.dynamic_chunk, self.dynamic_left = bool(enc.get("use_dynamic_chunk")), bool(enc.get("use_dynamic_left_chunk"))
        self.specaug = SpecAug(**dict(cfg.get("specaug_conf") or {})) if cfg.get("specaug") == "SpecAug" else None
        if cfg.get("specaug") not in (None, "SpecAug"):
            raise ConfigError(f"specaug={cfg['specaug']!r}: U2 training takes WeNet's spec_aug (SpecAug)")
        cmvn = Path(str(cfg.get("model_dir", "."))) / Path(str((cfg.get("cmvn_conf") or {}).get("cmvn_file", "global_cmvn"))).name
        if cfg.get("cmvn") and not cfg.get("init_param"):
            if not cmvn.is_file():
                raise ConfigError(f"training {cfg.get('model_dir')} from scratch needs its CMVN statistics: {cmvn} is missing")
            load_global_cmvn(model, cmvn)

    def chunking(self, frames: int) -> tuple[int, int]:
        """The (chunk size, left chunks) of this batch: drawn in training with dynamic chunks, else full context."""
        if self.model.training and self.dynamic_chunk:
            return sample_chunk(frames, self.dynamic_left)
        return -1, -1

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float], float]:
        """A batch (``speech``, ``speech_lengths``, ``text``, ``text_lengths``; funasr.data) -> (loss, stats, weight)."""
        model = self.model
        speech, speech_lens, text, text_lens = batch_tensors(model, batch, self.specaug)
        enc, enc_lens = model.encode(speech, speech_lens, *self.chunking(self.subsampled(speech.size(1))))
        stats: dict[str, float] = {}
        loss_ctc: Optional[torch.Tensor] = None
        loss_att: Optional[torch.Tensor] = None
        if self.ctc_weight > 0:
            loss_ctc = ctc_loss(model.ctc.ctc_lo(enc), enc_lens, text, text_lens, model.blank_id)
            stats["loss_ctc"] = float(loss_ctc.detach())
        if self.ctc_weight < 1:
            loss_att = self.attention_loss(enc, enc_lens, text, text_lens, stats)
        if loss_ctc is None:
            loss = loss_att
        elif loss_att is None:
            loss = loss_ctc
        else:
            loss = self.ctc_weight * loss_ctc + (1 - self.ctc_weight) * loss_att
        stats.update(loss=float(loss.detach()), batch_size=float(speech.shape[0]))
        weight = float((text_lens + 1).sum()) if self.length_normalized else float(speech.shape[0])
        return loss, stats, weight

    def subsampled(self, frames: int) -> int:
        """Encoder frames of ``frames`` feature frames (the subsampling's mask slices)."""
        kept = range(frames)
        for start, step in self.model.encoder.embed.slices:
            kept = kept[start::step]
        return len(kept)

    def attention_loss(self, enc: torch.Tensor, enc_lens: torch.Tensor, text: torch.Tensor, text_lens: torch.Tensor,
                       stats: dict[str, float]) -> torch.Tensor:
        """Label-smoothed CE of the left-to-right decoder, mixed with the right-to-left one's by ``reverse_weight``."""
        model = self.model
        memory_mask = (torch.arange(enc.size(1), device=enc.device).unsqueeze(0) < enc_lens.unsqueeze(1)).unsqueeze(1)
        ys_in, ys_out = decoder_io(text, text_lens, model.sos, model.eos)
        lens = text_lens + 1
        if model.bidirectional:
            r_in, r_out = decoder_io(text, text_lens, model.sos, model.eos, reverse=True) if self.reverse_weight > 0 else (None, None)
            left, right = model.decoder(enc, memory_mask, ys_in, lens, r_in)
        else:
            left, right, r_out = model.decoder(enc, memory_mask, ys_in, lens), None, None
        loss = label_smoothing_loss(left, ys_out, self.lsm_weight, self.length_normalized)
        stats.update(loss_att=float(loss.detach()), acc=token_accuracy(left, ys_out))
        if right is not None:
            loss_right = label_smoothing_loss(right, r_out, self.lsm_weight, self.length_normalized)
            stats["loss_att_right"] = float(loss_right.detach())
            loss = (1 - self.reverse_weight) * loss + self.reverse_weight * loss_right
        return loss
