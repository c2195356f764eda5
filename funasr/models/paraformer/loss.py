"""Training loss of the Paraformer family (Paraformer, BiCifParaformer): imported by training only.

loss = (1 - ctc_weight)·L_att + ctc_weight·L_ctc + predictor_weight·L_mae (+ predictor_weight/2·L_mae2
for the BiCif timestamp head), as the reference trains it:

- the CIF runs with the target lengths: the alphas are scaled so that exactly ``target_len`` tokens fire,
  and their raw sum is the predicted length of the MAE quantity loss;
- ``predictor_bias`` 1 appends ``</s>`` to every target (the predicted count includes it);
- L_att is label-smoothed cross-entropy (the KL divergence to the smoothed targets) of the decoder
  logits, per token when ``length_normalized_loss`` else per utterance;
- with ``sampling_ratio`` > 0 the glancing sampler feeds the decoder a mix of acoustic and true-token
  embeddings (a first, gradient-free decoder pass decides how many); accuracy is the first pass's;
- the optional CTC branch (``ctc_weight`` > 0) is a linear layer ``ctc.ctc_lo`` over the encoder output,
  added to the model (so saved checkpoints carry the reference's ``ctc.*`` keys; inference ignores them).

Dropout (the encoder's and decoder's ``*dropout_rate`` keys) lives in the network modules. In eval mode
there is no dropout, sampling or SpecAug, so the loss is deterministic.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from funasr import registry
from funasr.data import IGNORE_ID
from funasr.errors import ConfigError
from funasr.models.paraformer.cif_predictor import CifPredictorV3, gather_tokens, prefix_fire
from funasr.models.sanm import length_mask
from funasr.train import augment  # noqa: F401  (registers SpecAugLFR)

# The reference Paraformer's defaults for model_conf keys a config leaves out.
DEFAULTS = {
    "ctc_weight": 0.5,
    "lsm_weight": 0.0,
    "length_normalized_loss": False,
    "predictor_weight": 0.0,
    "predictor_bias": 0,
    "sampling_ratio": 0.2,
    "share_embedding": False,
}


def label_smoothing_loss(logits: torch.Tensor, targets: torch.Tensor, smoothing: float, normalize_length: bool) -> torch.Tensor:
    """KL(smoothed one-hot || softmax(logits)) summed over tokens, / token count or / batch size.

    logits (B, L, V), targets (B, L) with IGNORE_ID padding. The smoothed target puts
    ``1 - smoothing`` on the true class and ``smoothing / (V - 1)`` on every other class.
    """
    b, _, v = logits.shape
    logp = torch.log_softmax(logits.float(), dim=-1).reshape(-1, v)
    flat = targets.reshape(-1)
    valid = flat != IGNORE_ID
    with torch.no_grad():
        true = torch.full_like(logp, smoothing / (v - 1))
        true.scatter_(1, flat.masked_fill(~valid, 0)[:, None], 1.0 - smoothing)
    kl = torch.xlogy(true, true) - true * logp
    total = kl.masked_fill(~valid[:, None], 0.0).sum()
    return total / (valid.sum() if normalize_length else b)


def mae_loss(target_lens: torch.Tensor, predicted: torch.Tensor, normalize_length: bool) -> torch.Tensor:
    """Σ|target_len - predicted| / batch size, or / Σ target_len when ``normalize_length``."""
    target = target_lens.to(predicted.dtype)
    total = (target - predicted).abs().sum()
    return total / (target.sum() if normalize_length else target.shape[0])


def token_accuracy(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """Share of non-padding positions whose argmax equals the target."""
    valid = targets != IGNORE_ID
    return float((logits.argmax(-1)[valid] == targets[valid]).float().mean()) if bool(valid.any()) else 0.0


def append_eos(text: torch.Tensor, lens: torch.Tensor, eos: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Targets (B, L) with ``eos`` written after each item's last token -> (B, L+1), lengths + 1."""
    out = F.pad(text, (0, 1), value=IGNORE_ID)
    out[torch.arange(text.shape[0], device=text.device), lens] = eos
    return out, lens + 1


class CTC(nn.Module):
    """The CTC branch: ``ctc_lo`` (encoder width -> vocabulary) and CTC loss summed over the batch / batch size."""

    def __init__(self, vocab_size: int, encoder_output_size: int, dropout_rate: float = 0.0, **_: Any) -> None:
        super().__init__()
        self.ctc_lo = nn.Linear(encoder_output_size, vocab_size)
        self.dropout_rate = dropout_rate

    def forward(self, enc: torch.Tensor, enc_lens: torch.Tensor, text: torch.Tensor, text_lens: torch.Tensor) -> torch.Tensor:
        """enc (B, T, D), text (B, L) with IGNORE_ID padding -> scalar loss (blank id 0)."""
        return ctc_loss(self.ctc_lo(F.dropout(enc, self.dropout_rate, self.training)), enc_lens, text, text_lens)


def ctc_loss(logits: torch.Tensor, lens: torch.Tensor, text: torch.Tensor, text_lens: torch.Tensor, blank: int = 0) -> torch.Tensor:
    """CTC of per-frame logits (B, T, V) against targets (B, L) with IGNORE_ID padding, summed / batch size (float32)."""
    logp = torch.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
    labels = text[text != IGNORE_ID]
    return F.ctc_loss(logp, labels, lens, text_lens, blank=blank, reduction="none").sum() / logits.shape[0]


def batch_tensors(model: nn.Module, batch: dict[str, Any], specaug: Optional[nn.Module]) -> tuple[torch.Tensor, ...]:
    """``speech, speech_lengths, text, text_lengths`` of a batch on the model's device, text cut to its longest
    item, speech augmented by ``specaug`` in train mode."""
    device = next(model.parameters()).device
    speech, speech_lens = batch["speech"].to(device), batch["speech_lengths"].to(device)
    text_lens = batch["text_lengths"].to(device)
    text = batch["text"].to(device)[:, : int(text_lens.max())]
    if model.training and specaug is not None:
        speech = specaug(speech, speech_lens)
    return speech, speech_lens, text, text_lens


class ParaformerCriterion(nn.Module):
    """``forward(batch) -> (loss, stats, weight)`` for a Paraformer or BiCifParaformer ``model`` under ``cfg``.

    ``model`` becomes a submodule (wrap the criterion, not the model, in DistributedDataParallel);
    with ``ctc_weight`` > 0 a ``ctc`` part is added to the model when it has none. ``training_parts``
    names the parts the model has only for training: pass it to ``load_checkpoint(missing_ok=...)``
    to start from a checkpoint without them. ``weight`` is the batch size, or the number of target
    tokens when the loss is length-normalised (the reference's DDP weighting).
    """

    def __init__(self, model: nn.Module, cfg: dict[str, Any]) -> None:
        super().__init__()
        conf = {**DEFAULTS, **(cfg.get("model_conf") or {})}
        self.model = model
        self.ctc_weight = ratio("ctc_weight", conf["ctc_weight"])
        self.lsm_weight = ratio("lsm_weight", conf["lsm_weight"])
        self.sampling_ratio = ratio("sampling_ratio", conf["sampling_ratio"])
        self.predictor_weight = float(conf["predictor_weight"])
        self.length_normalized = bool(conf["length_normalized_loss"])
        self.share_embedding = bool(conf["share_embedding"])
        if conf["predictor_bias"] not in (0, 1):
            raise ConfigError(f"model_conf.predictor_bias must be 0 or 1, got {conf['predictor_bias']!r}")
        self.predictor_bias = int(conf["predictor_bias"])
        if self.sampling_ratio > 0 and not self.share_embedding and not hasattr(model.decoder, "embed"):
            raise ConfigError("model_conf.sampling_ratio > 0 needs the decoder's token embedding (decoder.embed), which this decoder lacks")
        self.training_parts: tuple[str, ...] = ()
        if self.ctc_weight > 0:
            if not hasattr(model, "ctc"):
                device = next(model.parameters()).device
                model.ctc = CTC(model.vocab_size, model.encoder.output_size(), **dict(cfg.get("ctc_conf") or {})).to(device)
            self.training_parts = ("ctc",)
        self.specaug = registry.build(cfg["specaug"], **dict(cfg.get("specaug_conf") or {})) if cfg.get("specaug") else None

    def forward(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, float], float]:
        """A batch (``speech``, ``speech_lengths``, ``text``, ``text_lengths``; funasr.data) -> (loss, stats, weight)."""
        model = self.model
        speech, speech_lens, text, text_lens = batch_tensors(model, batch, self.specaug)
        enc, enc_lens = model.encode(speech, speech_lens)
        stats: dict[str, float] = {}
        loss_ctc = None
        if self.ctc_weight > 0:
            loss_ctc = model.ctc(enc, enc_lens, text, text_lens)
            stats["loss_ctc"] = float(loss_ctc.detach())
        targets, target_lens = append_eos(text, text_lens, model.eos) if self.predictor_bias else (text, text_lens)
        embeds, predicted = self.target_cif(enc, enc_lens, target_lens, targets.shape[1])
        first = None
        if model.training and self.sampling_ratio > 0:
            embeds, first = self.glance(enc, enc_lens, embeds, targets, target_lens)
        logits = model.decoder(enc, enc_lens, embeds.to(enc.dtype), target_lens)
        loss_att = label_smoothing_loss(logits, targets, self.lsm_weight, self.length_normalized)
        loss_pre = mae_loss(target_lens, predicted, self.length_normalized)
        loss = loss_att if loss_ctc is None else (1 - self.ctc_weight) * loss_att + self.ctc_weight * loss_ctc
        loss = loss + self.predictor_weight * loss_pre
        if isinstance(model.predictor, CifPredictorV3):
            with torch.autocast(enc.device.type, enabled=False):
                predicted2 = model.predictor.raw_upsampled_alphas(enc.float(), enc_lens).sum(-1)
            loss_pre2 = mae_loss(target_lens, predicted2, self.length_normalized)
            loss = loss + 0.5 * self.predictor_weight * loss_pre2
            stats["loss_pre2"] = float(loss_pre2.detach())
        stats.update(
            loss=float(loss.detach()),
            loss_att=float(loss_att.detach()),
            loss_pre=float(loss_pre.detach()),
            acc=token_accuracy(first if first is not None else logits, targets),
            batch_size=float(speech.shape[0]),
        )
        weight = float(target_lens.sum()) if self.length_normalized else float(speech.shape[0])
        return loss, stats, weight

    def target_cif(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, target_lens: torch.Tensor, max_len: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """CIF with the alphas scaled to fire ``target_lens`` tokens -> (embeddings (B, max_len, D), raw Σα (B,)).

        In float32 under any autocast, as the reference's predictor.
        """
        with torch.autocast(enc.device.type, enabled=False):
            hidden, alphas = self.model.predictor.masked_alphas(enc.float(), enc_lens)
        predicted = alphas.sum(-1)
        alphas = alphas * (target_lens.float() / predicted)[:, None]
        _, fire, remain = prefix_fire(alphas)
        embeds = gather_tokens(hidden, alphas, fire, remain, max_len)
        return embeds * length_mask(target_lens, max_len)[..., None], predicted

    def glance(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, embeds: torch.Tensor, targets: torch.Tensor, target_lens: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Glancing sampler -> (decoder input (B, L, D), first-pass logits (B, L, V) zero on padding).

        A gradient-free decoder pass counts each item's correct tokens; ⌊(len - correct)·sampling_ratio⌋
        random positions then take the true token's embedding instead of the acoustic one.
        """
        decoder = self.model.decoder
        valid = length_mask(target_lens, targets.shape[1])  # (B, L)
        ids = targets.masked_fill(~valid, 0)
        truth = decoder.output_layer.weight[ids] if self.share_embedding else decoder.embed(ids)
        with torch.no_grad():
            first = decoder(enc, enc_lens, embeds.to(enc.dtype), target_lens)
            same = ((first.argmax(-1) == targets) & valid).sum(1)
            keep = valid.clone()
            for i in range(targets.shape[0]):
                n = int((target_lens[i] - same[i]).float() * self.sampling_ratio)
                if n > 0:
                    keep[i, torch.randperm(int(target_lens[i]))[:n].to(keep.device)] = False
        mixed = torch.where(keep[..., None], embeds, truth.to(embeds.dtype))
        return mixed * valid[..., None], first * valid[..., None]


def ratio(name: str, value: Any) -> float:
    """``model_conf.name`` as a float in [0, 1], checked."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise ConfigError(f"model_conf.{name} must be a number in [0, 1], got {value!r}")
    return float(value)
