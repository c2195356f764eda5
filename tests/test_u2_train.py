"""U2 / U2++ training: WeNet's hybrid CTC/attention loss, dynamic chunks, SpecAugment, overfitting, funasr-train end to end."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
import yaml

from conftest import MODELS, ROOT
from funasr.auto_model import AutoModel
from funasr.errors import ConfigError
from funasr.models.u2.loss import SpecAug, decoder_io, sample_chunk
from funasr.train.config import load_config
from funasr.train.run import train
from test_losses import targets, tiny, toy_batch
from training import make_corpus, make_jsonl

pytestmark = pytest.mark.usefixtures("one_thread")

U2PP = "u2pp_conformer_tiny"


def test_decoder_inputs_and_outputs_by_hand():
    text = torch.tensor([[5, 6, 7], [8, -1, -1]])
    lens = torch.tensor([3, 1])
    ys_in, ys_out = decoder_io(text, lens, sos=9, eos=9)
    assert ys_in.tolist() == [[9, 5, 6, 7], [9, 8, 9, 9]]  # <sos> + tokens, padded with <eos>
    assert ys_out.tolist() == [[5, 6, 7, 9], [8, 9, -1, -1]]  # tokens + <eos>, padded with ignore_id
    r_in, r_out = decoder_io(text, lens, sos=9, eos=9, reverse=True)
    assert r_in.tolist() == [[9, 7, 6, 5], [9, 8, 9, 9]]
    assert r_out.tolist() == [[7, 6, 5, 9], [8, 9, -1, -1]]


def test_dynamic_chunk_draws_full_context_or_1_to_25_frames():
    torch.manual_seed(0)
    draws = [sample_chunk(200, dynamic_left=False) for _ in range(400)]
    full = sum(c == -1 for c, _ in draws)
    assert 150 < full < 250  # about half the batches see the whole utterance
    assert {c for c, _ in draws if c != -1} <= set(range(1, 26)) and all(left == -1 for _, left in draws)
    lefts = [sample_chunk(200, dynamic_left=True) for _ in range(400)]
    assert {left for c, left in lefts if c != -1} - {-1} and all(0 <= left < 200 // c for c, left in lefts if c != -1)
    assert sample_chunk(1, True) == (-1, -1)


def test_the_loss_is_wenets_hybrid_ctc_attention_loss():
    """In eval (full context, no SpecAug) the loss equals ctc_weight·CTC + (1-ctc_weight)·((1-rw)·L2R + rw·R2L),
    each part recomputed through the inference path (the scorer of attention rescoring, WeNet's CTC head)."""
    model, criterion, _ = tiny(U2PP, ctc_weight=0.3, reverse_weight=0.4, lsm_weight=0.0)
    batch = toy_batch(3, dim=80, span=6)
    criterion.eval()
    with torch.no_grad():
        loss, stats, weight = criterion(batch)
        enc, enc_lens = model.encode(batch["speech"], batch["speech_lengths"])
        ctc = F.ctc_loss(model.ctc_log_probs(enc).transpose(0, 1), batch["text"][batch["text"] >= 0], enc_lens,
                         batch["text_lengths"], reduction="sum") / 3
        left = right = 0.0
        for i, ys in enumerate(targets(batch)):
            hyp = torch.tensor([[model.sos, *ys]])
            l2r, r2l = model.decoder_log_probs(enc[i : i + 1, : int(enc_lens[i])], hyp, torch.tensor([len(ys) + 1]), reverse=True)
            left -= sum(float(l2r[0, j, t]) for j, t in enumerate([*ys, model.eos]))
            right -= sum(float(r2l[0, j, t]) for j, t in enumerate([*ys[::-1], model.eos]))
    assert weight == 3.0
    assert stats["loss_ctc"] == pytest.approx(float(ctc), rel=1e-4)
    assert stats["loss_att"] == pytest.approx(left / 3, rel=1e-4)
    assert stats["loss_att_right"] == pytest.approx(right / 3, rel=1e-4)
    assert float(loss) == pytest.approx(0.3 * float(ctc) + 0.7 * (0.6 * left / 3 + 0.4 * right / 3), rel=1e-4)
    with pytest.raises(ConfigError, match="reverse_weight"):
        tiny("u2pp_conformer_tiny", reverse_weight=0.5, extra={"decoder": "transformer"})


NO_DROPOUT = {
    "encoder_conf": {"dropout_rate": 0.0, "positional_dropout_rate": 0.0, "attention_dropout_rate": 0.0},
    "decoder_conf": {"dropout_rate": 0.0, "positional_dropout_rate": 0.0, "self_attention_dropout_rate": 0.0,
                     "src_attention_dropout_rate": 0.0},
}


def test_training_draws_a_chunk_per_batch_and_validation_sees_everything():
    _, criterion, _ = tiny(U2PP, ctc_weight=0.3, reverse_weight=0.3, extra=NO_DROPOUT)
    batch = toy_batch(3, dim=80, span=6)
    frames = criterion.subsampled(batch["speech"].size(1))
    criterion.eval()
    with torch.no_grad():
        full = float(criterion(batch)[0])
    criterion.train()
    seen = set()
    for seed in range(6):
        torch.manual_seed(seed)
        chunk = sample_chunk(frames, False)[0]
        torch.manual_seed(seed)
        with torch.no_grad():
            value = float(criterion(batch)[0])
        assert (value == pytest.approx(full, rel=1e-6)) == (chunk == -1), (seed, chunk)  # the chunk mask is applied
        seen.add(chunk == -1)
    assert seen == {True, False}


@pytest.mark.parametrize("part", sorted({f"{section}.{key}" for section, keys in NO_DROPOUT.items() for key in keys}))
def test_each_dropout_rate_of_the_config_applies_in_training_only(part):
    section, key = part.split(".")
    rates = {s: dict(keys) for s, keys in NO_DROPOUT.items()}
    rates[section][key] = 0.5
    model, _, _ = tiny(U2PP, extra=rates)
    batch = toy_batch(2, dim=80, span=6)
    ys, lens = torch.tensor([[model.sos, 5, 6, 7]]).expand(2, 4), torch.tensor([4, 4])

    def run() -> torch.Tensor:
        torch.manual_seed(0)
        with torch.no_grad():
            enc, enc_lens = model.encode(batch["speech"], batch["speech_lengths"])
            mask = (torch.arange(enc.size(1)).unsqueeze(0) < enc_lens.unsqueeze(1)).unsqueeze(1)
            return model.decoder.left_decoder(enc, mask, ys, lens)

    model.eval()
    first = run()
    assert torch.equal(run(), first)
    model.train()
    assert not torch.allclose(run(), first)  # this rate is used (the others are 0)


def test_specaug_masks_bands_inside_each_utterance():
    torch.manual_seed(0)
    x = torch.ones(2, 100, 80)
    lens = torch.tensor([100, 40])
    y = SpecAug(num_t_mask=2, num_f_mask=2, max_t=10, max_f=5)(x, lens)
    assert torch.equal(x, torch.ones(2, 100, 80))  # the input is left alone
    assert torch.equal(y[1, 40:], x[1, 40:])  # no time band past an utterance's end
    for b in range(2):
        zero_bins = (y[b, : int(lens[b])] == 0).all(0).sum()
        assert 1 <= zero_bins <= 10  # two bands of 1..5 bins
        zero_frames = (y[b] == 0).all(1).sum()
        assert 1 <= zero_frames <= 20
    with pytest.raises(ConfigError, match="max_w"):
        SpecAug(max_w=80)


def test_tiny_u2pp_overfits_with_dynamic_chunks_and_decodes_in_every_mode():
    model, criterion, _ = tiny(U2PP, ctc_weight=0.3, reverse_weight=0.3, lsm_weight=0.1)
    batch = toy_batch(12, dim=80, span=6)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    criterion.train()
    for _ in range(120):
        loss, stats, _ = criterion(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        for chunk in (-1, 4):  # one model: full context and 4-frame chunks
            enc, enc_lens = model.encode(batch["speech"], batch["speech_lengths"], chunk)
            best = model.ctc_log_probs(enc).argmax(-1)
            got = []
            for i in range(len(best)):
                ids = torch.unique_consecutive(best[i, : int(enc_lens[i])]).tolist()
                got.append([t for t in ids if t != model.blank_id])
            assert got == targets(batch), chunk


def _u2_folder(tmp_path, data):
    """A WeNet folder to train from scratch: the tiny U2++ train.yaml, units of the corpus, its global_cmvn."""
    from funasr.bin.compute_cmvn import main as compute_cmvn
    from funasr.train.prepare import token_list

    folder = tmp_path / "init"
    folder.mkdir()
    cfg = yaml.safe_load((MODELS / U2PP / "train.yaml").read_text(encoding="utf-8"))
    texts = [json.loads(line)["target"] for line in data.read_text(encoding="utf-8").splitlines()]
    units = ["<blank>", "<unk>", *token_list(texts)[3:-1], "<sos/eos>"]
    (folder / "units.txt").write_text("".join(f"{u} {i}\n" for i, u in enumerate(units)), encoding="utf-8")
    cfg.update(output_dim=len(units), vocab_size=len(units))
    cfg["tokenizer_conf"]["special_tokens"] = {"<blank>": 0, "<unk>": 1, "<sos>": len(units) - 1, "<eos>": len(units) - 1}
    (folder / "train.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    assert compute_cmvn([str(folder), str(data), "-o", str(folder / "global_cmvn"), "--format", "wenet"]) == 0
    return folder


def test_funasr_train_trains_a_wenet_folder_from_scratch_into_one_automodel_loads(tmp_path, caplog):
    data = make_jsonl(tmp_path / "corpus", n=6)
    folder = _u2_folder(tmp_path, data)
    valid = tmp_path / "valid.jsonl"
    shutil.copyfile(data, valid)
    cfg = load_config([f"++model={folder}", f"++train_data_set_list={data}", f"++valid_data_set_list={valid}",
                       "++dataset_conf.batch_size=3", "++dataset_conf.num_workers=0", "++train_conf.max_epoch=1",
                       "++train_conf.avg_nbest_model=0", "++scheduler_conf.warmup_steps=10", "++device=cpu",
                       f"++output_dir={tmp_path / 'exp'}"])
    assert cfg["dataset_conf"]["batch_type"] == "example" and cfg["dataset_conf"]["speed_perturb"] == [0.9, 1.0, 1.1]
    assert cfg["specaug"] == "SpecAug" and cfg["train_conf"]["grad_clip"] == 5  # WeNet's keys in funasr-train's spelling
    out = train(cfg)
    assert str(folder) not in (out / "config.yaml").read_text(encoding="utf-8")  # no path back to the starting folder
    caplog.clear()
    model = AutoModel(model=str(out), device="cpu", disable_pbar=True)
    assert not any("CMVN" in r.getMessage() for r in caplog.records)  # its global CMVN is in the encoder, not missing
    trained = torch.load(out / "model.pt", map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(model.model.state_dict()["ctc.ctc_lo.weight"], trained["ctc.ctc_lo.weight"])
    assert not torch.equal(trained["encoder.global_cmvn.istd"], torch.ones(80))  # the folder's global_cmvn
    assert model.generate(input=str(tmp_path / "corpus" / "wav" / "utt00.wav"))[0]["key"] == "utt00"


def test_the_u2_recipe_decodes_and_tables_each_mode_and_chunk_size(tmp_path):
    lists = make_corpus(tmp_path / "corpus", n=2)
    local = ROOT / "egs" / "synthetic_zh" / "u2" / "local"
    decoded = tmp_path / "exp" / "decode_test_avg5"
    subprocess.run([sys.executable, str(local / "decode.py"), str(MODELS / U2PP), str(lists["wav.scp"]), str(decoded),
                    "--modes=ctc_greedy_search,attention_rescoring", "--chunks=-1,4"], check=True, capture_output=True)
    for out in decoded.iterdir():
        cer = subprocess.run([sys.executable, "-m", "funasr.bin.cer", str(lists["text"]), str(out / "text")],
                             check=True, capture_output=True, text=True).stdout
        (out / "text.cer").write_text(cer, encoding="utf-8")
    printed = subprocess.run([sys.executable, str(local / "table.py"), str(tmp_path / "exp"), "5", "test"],
                             check=True, capture_output=True, text=True).stdout
    cer_table, rtf_table = printed.split("RTF")
    number = r"[0-9]+\.[0-9]+"
    for table in (cer_table, rtf_table):
        assert "| decoding mode | full | 4 |" in table
        for mode in ("ctc_greedy_search", "attention_rescoring"):
            assert re.search(rf"\| {mode} \| {number} \| {number} \|", table)
        assert "| attention | - | - |" in table  # not decoded
    assert float(re.search(rf"\| ctc_greedy_search \| ({number})", rtf_table).group(1)) > 0


def test_wenet_training_keys_map_to_funasr_train_keys():
    from funasr.models.u2.config import read_model_dir, training_config

    cfg = read_model_dir(MODELS / U2PP)
    out = training_config(cfg)
    assert out["train_conf"] == {"accum_grad": 1, "grad_clip": 5, "max_epoch": 360, "log_interval": 100}
    assert out["dataset_conf"] == {
        "batch_type": "example", "batch_size": 16, "max_source_length": 40960, "min_source_length": 0,
        "max_target_length": 200, "min_target_length": 1, "shuffle": True, "sort_size": 500, "speed_perturb": [0.9, 1.0, 1.1],
    }
    assert out["specaug"] == "SpecAug" and out["specaug_conf"] == {"max_f": 10, "max_t": 50, "num_f_mask": 2, "num_t_mask": 2}
    assert "dataset" not in out and out["frontend_conf"]["window"] == "povey"
    cfg["dataset_conf"]["filter_conf"]["max_output_input_ratio"] = 0.1
    with pytest.raises(ConfigError, match="max_output_input_ratio"):
        training_config(cfg)
    cfg["dataset_conf"]["filter_conf"].pop("max_output_input_ratio")
    cfg["dataset_conf"]["batch_conf"]["batch_type"] = "bucket"
    with pytest.raises(ConfigError, match="bucket"):
        training_config(cfg)
