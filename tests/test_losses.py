"""Training losses of the Paraformer family: hand-computed values, gradients, determinism, the glancing
sampler, SpecAugLFR, checkpoints with training-only parts, and a tiny Paraformer overfitting 20 sequences."""
from __future__ import annotations

import math
import shutil

import pytest
import torch

from conftest import MODELS, auto
from funasr import registry
from funasr.auto_model import AutoModel
from funasr.config import resolve_model_dir
from funasr.errors import CheckpointError, ConfigError
from funasr.models import build_network, load_checkpoint
from funasr.models.paraformer.loss import CTC, ParaformerCriterion, label_smoothing_loss, mae_loss
from funasr.tasks import frontend_and_tokenizer
from funasr.train.augment import SpecAugLFR

pytestmark = pytest.mark.usefixtures("one_thread")

SPECAUG = {
    "specaug": "SpecAugLFR",
    "specaug_conf": {
        "apply_time_warp": False,
        "apply_freq_mask": True,
        "freq_mask_width_range": [0, 30],
        "lfr_rate": 6,
        "num_freq_mask": 1,
        "apply_time_mask": True,
        "time_mask_width_range": [0, 12],
        "num_time_mask": 1,
    },
}


def tiny(name: str = "paraformer_tiny", seed: int = 0, **model_conf) -> tuple[torch.nn.Module, ParaformerCriterion, dict]:
    """A randomly initialised tiny model of the parity config ``name`` and its family's criterion."""
    cfg = resolve_model_dir(str(MODELS / name), {})
    extra = model_conf.pop("extra", {})
    for key, value in extra.items():  # sections merged one level deep
        cfg[key] = {**cfg[key], **value} if isinstance(value, dict) and isinstance(cfg.get(key), dict) else value
    cfg["model_conf"] = {**cfg["model_conf"], **model_conf}
    frontend, tokenizer = frontend_and_tokenizer(cfg)
    torch.manual_seed(seed)
    model = build_network(cfg, frontend, tokenizer)
    criterion = registry.resolve(registry.family_of(cfg["model"]).criterion)(model, cfg)
    return model, criterion, cfg


def toy_batch(n: int = 20, seed: int = 0, dim: int = 560, span: int = 3) -> dict:
    """``n`` fixed feature sequences of width ``dim``: tokens 3..12, each ``span``..``span``+2 noisy frames of its own
    random pattern, silence between."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(14, dim, generator=g)
    feats, texts = [], []
    for _ in range(n):
        ids = torch.randint(3, 13, (int(torch.randint(2, 7, (1,), generator=g)),), generator=g)
        frames = [patterns[13].expand(2 * span, dim)]
        for t in ids.tolist():
            frames.append(patterns[t].expand(int(torch.randint(span, span + 3, (1,), generator=g)), dim))
            frames.append(patterns[13].expand(int(torch.randint(0, span, (1,), generator=g)), dim))
        f = torch.cat(frames)
        feats.append(f + 0.3 * torch.randn(f.shape, generator=g))
        texts.append(ids)
    t_max, l_max = max(len(f) for f in feats), max(len(t) for t in texts)
    return {
        "keys": [f"utt{i}" for i in range(n)],
        "speech": torch.stack([torch.cat([f, f.new_zeros(t_max - len(f), dim)]) for f in feats]),
        "speech_lengths": torch.tensor([len(f) for f in feats]),
        "text": torch.stack([torch.cat([t, t.new_full((l_max - len(t),), -1)]) for t in texts]),
        "text_lengths": torch.tensor([len(t) for t in texts]),
    }


def greedy(model: torch.nn.Module, batch: dict) -> list[list[int]]:
    """Inference-path tokens (ids 0, 1, 2 dropped) of each item."""
    model.eval()
    with torch.no_grad():
        enc, enc_lens = model.encode(batch["speech"], batch["speech_lengths"])
        cif = model.predict(enc, enc_lens)
        ids = model.decode(enc, enc_lens, cif).argmax(-1)
    return [[t for t in ids[i, : int(cif.token_num[i])].tolist() if t > 2] for i in range(len(ids))]


def targets(batch: dict) -> list[list[int]]:
    return [t[:n].tolist() for t, n in zip(batch["text"], batch["text_lengths"])]


def test_label_smoothing_and_mae_by_hand():
    # uniform logits over 4 classes, smoothing 0.1: KL = 0.9 ln 0.9 + 3·(0.1/3) ln(0.1/3) + ln 4 per token
    per_token = 0.9 * math.log(0.9) + 0.1 * math.log(0.1 / 3) + math.log(4)
    logits = torch.zeros(1, 3, 4)
    tgt = torch.tensor([[1, 3, -1]])
    assert label_smoothing_loss(logits, tgt, 0.1, normalize_length=True).item() == pytest.approx(per_token, abs=1e-6)
    assert label_smoothing_loss(logits, tgt, 0.1, normalize_length=False).item() == pytest.approx(2 * per_token, abs=1e-6)
    # no smoothing: plain cross-entropy, -log softmax([2, 0, 0, 0])[0]; padding ignored; / batch size 2
    logits = torch.tensor([[[2.0, 0, 0, 0]], [[5.0, 1, 1, 1]]])
    assert label_smoothing_loss(logits, torch.tensor([[0], [-1]]), 0.0, False).item() == pytest.approx(
        (math.log(math.exp(2) + 3) - 2) / 2, abs=1e-6
    )
    # MAE quantity loss: |3 - 2.5| + |5 - 6| = 1.5, / 2 items or / 8 target tokens
    assert mae_loss(torch.tensor([3, 5]), torch.tensor([2.5, 6.0]), False).item() == pytest.approx(0.75)
    assert mae_loss(torch.tensor([3, 5]), torch.tensor([2.5, 6.0]), True).item() == pytest.approx(0.1875)


def test_ctc_loss_by_hand():
    ctc = CTC(vocab_size=4, encoder_output_size=8)
    torch.nn.init.zeros_(ctc.ctc_lo.weight)
    torch.nn.init.zeros_(ctc.ctc_lo.bias)  # uniform 1/4 per frame
    # 2 frames, label [1]: paths 11, 01, 10 -> p = 3/16; the second item (1 frame, label [2]) p = 1/4; / batch 2
    loss = ctc(torch.randn(2, 2, 8), torch.tensor([2, 1]), torch.tensor([[1], [2]]), torch.tensor([1, 1]))
    assert loss.item() == pytest.approx((math.log(16 / 3) + math.log(4)) / 2, abs=1e-5)


def test_cif_fires_exactly_the_target_length():
    model, criterion, _ = tiny()
    pred = model.predictor
    torch.nn.init.zeros_(pred.cif_output.weight)
    torch.nn.init.constant_(pred.cif_output.bias, math.log(1 / 3))  # alpha = sigmoid(ln 1/3) = 0.25 on every frame
    enc = torch.eye(10, 64).expand(2, 10, 64).clone()  # frame t = unit vector e_t
    embeds, raw = criterion.target_cif(enc, torch.tensor([8, 4]), torch.tensor([3, 1]), 3)
    assert raw.tolist() == pytest.approx([2.0, 1.0], abs=1e-5)  # the raw Σα, the MAE input
    want = torch.zeros(2, 3, 64)
    # item 0: alphas scaled by 3/2 to 0.375: tokens split at prefix sums 1 and 2
    want[0, 0, :3] = torch.tensor([0.375, 0.375, 0.25])
    want[0, 1, 2:6] = torch.tensor([0.125, 0.375, 0.375, 0.125])
    want[0, 2, 5:8] = torch.tensor([0.25, 0.375, 0.375])
    want[1, 0, :4] = 0.25  # item 1: one token of the 4 valid frames, nothing after it
    assert torch.allclose(embeds, want, atol=1e-5)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed-precision training: the CIF stays float32
        assert torch.equal(criterion.target_cif(enc, torch.tensor([8, 4]), torch.tensor([3, 1]), 3)[0], embeds)


def test_total_loss_is_the_weighted_sum_and_gradients_reach_every_parameter():
    model, criterion, _ = tiny("bicif_paraformer_tiny", ctc_weight=0.3, predictor_weight=0.7)
    assert "ctc.ctc_lo.weight" in model.state_dict() and criterion.training_parts == ("ctc",)
    criterion.train()
    loss, stats, weight = criterion(toy_batch(4))
    want = 0.7 * stats["loss_att"] + 0.3 * stats["loss_ctc"] + 0.7 * stats["loss_pre"] + 0.35 * stats["loss_pre2"]
    assert stats["loss"] == pytest.approx(want, rel=1e-5)
    assert weight == float(toy_batch(4)["text_lengths"].sum() + 4)  # length-normalised: target tokens with </s>
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.grad is None or not bool(p.grad.abs().sum() > 0)]
    assert not dead, dead


def test_eval_is_deterministic_and_skips_specaug_and_sampling():
    model, criterion, _ = tiny(extra=SPECAUG)
    batch = toy_batch(6)
    criterion.eval()
    first, second = criterion(batch), criterion(batch)
    assert first[1] == second[1] and torch.equal(first[0], second[0])
    criterion.train()
    torch.manual_seed(1)
    train1 = criterion(batch)[1]
    torch.manual_seed(1)
    assert criterion(batch)[1] == train1  # seeded: the same masks and glancing positions
    assert train1["loss_att"] != first[1]["loss_att"]


def test_dropout_acts_in_training_only():
    rates = {"dropout_rate": 0.2, "attention_dropout_rate": 0.2}
    decoder_rates = {"dropout_rate": 0.2, "self_attention_dropout_rate": 0.2, "src_attention_dropout_rate": 0.2}
    model, criterion, _ = tiny(sampling_ratio=0.0, extra={"encoder_conf": rates, "decoder_conf": decoder_rates})
    plain, plain_criterion, _ = tiny(sampling_ratio=0.0)  # same seed, same weights, no dropout
    batch = toy_batch(4)
    criterion.train()
    assert criterion(batch)[1]["loss"] != criterion(batch)[1]["loss"]
    criterion.eval()
    plain_criterion.eval()
    assert criterion(batch)[1] == plain_criterion(batch)[1]


def test_glancing_sampler_changes_the_decoder_input_in_train_mode_only():
    model, criterion, _ = tiny()  # sampling_ratio 0.75
    seen = []
    model.decoder.register_forward_pre_hook(lambda mod, args: seen.append(args[2].detach().clone()))
    batch = toy_batch(6)
    criterion.eval()
    criterion(batch)
    assert len(seen) == 1
    acoustic = seen.pop()
    criterion.train()
    criterion(batch)
    assert len(seen) == 2 and torch.equal(seen[0], acoustic)  # first pass: the CIF embeddings
    changed = (seen[1] != acoustic).any(-1)  # (B, L) positions given the true token's embedding
    lens = batch["text_lengths"] + 1
    assert bool(changed.any())
    assert not bool(changed[torch.arange(changed.shape[1])[None, :] >= lens[:, None]].any())  # never padding
    # at random init nothing is right, so ⌊len · 0.75⌋ positions per item are replaced
    assert changed.sum(1).tolist() == [int(n * 0.75) for n in lens.tolist()]


def test_specaug_lfr_masks_one_band_per_stacked_frame_and_a_time_band():
    aug = SpecAugLFR(**SPECAUG["specaug_conf"])
    torch.manual_seed(3)
    out = aug(torch.ones(8, 60, 560))
    torch.manual_seed(3)
    assert torch.equal(aug(torch.ones(8, 60, 560)), out)  # seedable through torch's generator
    bands, spans = [], []
    for item in out:
        cols = (item == 0).all(0).nonzero().flatten().tolist()  # zeroed features (every frame)
        rows = (item == 0).all(1).nonzero().flatten().tolist()  # zeroed frames (every feature)
        band = [c for c in cols if c < 80]
        assert cols == [c + 80 * k for k in range(7) for c in band]  # the same offset in each of the 7 stacked frames
        assert band == list(range(band[0], band[0] + len(band))) if band else True
        assert rows == list(range(rows[0], rows[0] + len(rows))) if rows else True
        bands.append(len(band))
        spans.append(len(rows))
    assert 0 < max(bands) < 30 and 0 < max(spans) < 12
    with pytest.raises(ConfigError, match="apply_time_warp"):
        SpecAugLFR(**{**SPECAUG["specaug_conf"], "apply_time_warp": True})


def test_bad_model_conf_is_named():
    with pytest.raises(ConfigError, match="sampling_ratio"):
        tiny(sampling_ratio=2)
    with pytest.raises(ConfigError, match="predictor_bias"):
        tiny(predictor_bias=3)


def test_checkpoints_with_and_without_training_parts(tmp_path):
    released = MODELS / "paraformer_tiny" / "model.pt"
    model, criterion, _ = tiny(ctc_weight=0.3)
    with pytest.raises(CheckpointError, match="ctc.ctc_lo"):
        load_checkpoint(model, released)
    ctc_before = model.ctc.ctc_lo.weight.detach().clone()
    kept = load_checkpoint(model, released, missing_ok=criterion.training_parts)  # fine-tuning a released model
    assert kept == ["ctc.ctc_lo.weight", "ctc.ctc_lo.bias"] and torch.equal(model.ctc.ctc_lo.weight, ctc_before)
    assert torch.equal(model.decoder.output_layer.weight, torch.load(released)["decoder.output_layer.weight"])
    # a folder saved by training (state dict with ctc.*) loads in AutoModel and decodes as the released one
    folder = tmp_path / "trained"
    shutil.copytree(MODELS / "paraformer_tiny", folder)
    torch.save(model.state_dict(), folder / "model.pt")
    audio = str(MODELS.parent / "audio" / "example.wav")
    trained = AutoModel(model=str(folder), device="cpu", disable_pbar=True).generate(input=audio)
    assert trained[0]["text"] == auto("paraformer_tiny").generate(input=audio)[0]["text"]


def overfit(criterion: ParaformerCriterion, batch: dict, steps: int) -> dict:
    """``steps`` of plain Adam (lr 2e-3) on one batch; the last step's stats."""
    optimizer = torch.optim.Adam(criterion.model.parameters(), lr=2e-3)
    criterion.train()
    for _ in range(steps):
        loss, stats, _ = criterion(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return stats


def test_tiny_paraformer_overfits_twenty_sequences():
    model, criterion, _ = tiny()
    batch = toy_batch(20)
    assert overfit(criterion, batch, 80)["acc"] == 1.0
    assert greedy(model, batch) == targets(batch)


@pytest.mark.slow
def test_tiny_bicif_paraformer_overfits_with_ctc_and_specaug():
    model, criterion, _ = tiny("bicif_paraformer_tiny", ctc_weight=0.3, extra=SPECAUG)
    batch = toy_batch(20)
    overfit(criterion, batch, 200)
    assert greedy(model, batch) == targets(batch)
