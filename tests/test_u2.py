"""WeNet U2++ parity: every case of wenet.json (4 searches x full / chunked / streamed encoders, 2 clips),
the recorded intermediate tensors, folder loading and the options of the searches."""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import torch

from funasr import search
from funasr.auto_model import AutoModel
from funasr.errors import ConfigError, OptionError
from funasr.options import SearchOptions
from tests.conftest import MODELS, PARITY, read_wave

U2PP = MODELS / "u2pp_conformer_tiny"
CASES = json.loads((PARITY / "wenet.json").read_text(encoding="utf-8"))["cases"]
FBANK = np.load(PARITY / "intermediates" / "wenet_fbank.npz")
MIDS = np.load(PARITY / "intermediates" / "wenet_u2pp_conformer_tiny__example.npz")
SCORE_TOL = 1e-3
# the default run checks each search on full context and the CTC searches on masked and streamed chunks; all 88 are slow
FAST = ("u2pp_conformer_tiny/example/full/", "u2pp_conformer_tiny/example/chunk8_left2/c",
        "u2pp_conformer_tiny/example/chunk4_left1_stream/c", "u2pp_conformer_tiny/sample/chunk16_stream/attention_")


pytestmark = pytest.mark.usefixtures("one_thread")


@lru_cache(maxsize=None)
def u2pp() -> AutoModel:
    return AutoModel(model=str(U2PP), disable_pbar=True)


def engine():
    return u2pp().task.net


@lru_cache(maxsize=None)
def encoded(clip: str, chunk: int, left: int, stream: bool) -> tuple[torch.Tensor, np.ndarray]:
    """Our fbank of ``clip`` through the encoder (masked or chunk by chunk) and the CTC log-probs."""
    eng = engine()
    feats = torch.from_numpy(u2pp().task.frontend.extract(read_wave(f"{clip}.wav")))[None]
    with torch.inference_mode():
        if stream:
            enc = eng.module.encode_chunk_by_chunk(feats, chunk, left)
        else:
            enc, _ = eng.module.encode(feats, torch.tensor([feats.shape[1]]), chunk, left)
        return enc, eng.module.ctc_log_probs(enc)[0].numpy()


def run_case(case: dict) -> search.Hypothesis:
    d = case["decode"]
    clip = case["audio"].split("/")[-1][:-4]
    enc, ctc = encoded(clip, d["decoding_chunk_size"], d["num_decoding_left_chunks"], d["simulate_streaming"])
    assert enc.shape[1] == case["encoder_frames"]
    opts = SearchOptions(d["method"], d["beam_size"], d["decoding_chunk_size"], d["num_decoding_left_chunks"],
                         d["ctc_weight"], d["reverse_weight"])
    with torch.inference_mode():
        return engine().search_one(enc, ctc, opts)


@pytest.mark.parametrize("case", [c if c["id"].startswith(FAST) else pytest.param(c, marks=pytest.mark.slow) for c in CASES],
                         ids=[c["id"] for c in CASES])
def test_wenet_parity(case: dict) -> None:
    want = case["expected"]
    got = run_case(case)
    assert got.tokens == want["tokens"]
    if want["score"] is None:
        assert got.score is None
    else:
        assert abs(got.score - want["score"]) < SCORE_TOL
        assert got.times == want["times"]
        assert search.word_pieces(got.times, 40) == [[w["start"], w["end"]] for w in want["runtime_word_pieces"]]
    if "confidence" in want:
        assert got.confidence == pytest.approx(want["confidence"], rel=1e-3)
        assert np.allclose(got.tokens_confidence, want["tokens_confidence"], rtol=1e-3, atol=1e-9)


BEAM_EDGE = 1e-3  # log-probability: hypotheses this close to the last one kept are near-ties at the beam's edge
PREFIX = [c for c in CASES if c["decode"]["method"] == "ctc_prefix_beam_search"]


@pytest.mark.parametrize("case", [c if c["id"].startswith(FAST) else pytest.param(c, marks=pytest.mark.slow) for c in PREFIX],
                         ids=[c["id"] for c in PREFIX])
def test_wenet_parity_nbest(case: dict) -> None:
    """Prefix beam search's whole n-best: tokens, scores and peak frames."""
    d = case["decode"]
    _, ctc = encoded(case["audio"].split("/")[-1][:-4], d["decoding_chunk_size"], d["num_decoding_left_chunks"],
                     d["simulate_streaming"])
    nbest = search.ctc_prefix_beam_search(ctc, d["beam_size"])
    want = case["expected"]
    assert np.allclose([h.score for h in nbest], want["nbest_scores"], atol=SCORE_TOL)
    # The last hypothesis kept can be another one of (almost) the same score: which prefixes survive the beam's cut
    # on a near-tie follows float noise (CPU kind, threads). Every hypothesis clearly above the cut matches exactly.
    cut = want["nbest_scores"][-1] + BEAM_EDGE
    clear = [i for i, score in enumerate(want["nbest_scores"]) if score > cut]
    assert [nbest[i].tokens for i in clear] == [want["nbest"][i] for i in clear]
    assert [nbest[i].times for i in clear] == [want["nbest_times"][i] for i in clear]


@pytest.mark.parametrize("method", ["ctc_greedy_search", "ctc_prefix_beam_search", "attention_rescoring"])
def test_wenet_parity_text(method: str) -> None:
    """AutoModel.generate end to end (our fbank, the typed options) gives WeNet's text, masked chunks included."""
    for config in ("full", "chunk8_left2"):
        case = next(c for c in CASES if c["id"] == f"u2pp_conformer_tiny/example/{config}/{method}")
        d = case["decode"]
        res = u2pp().generate(input=str(PARITY / case["audio"]), decoding_method=method, beam_size=d["beam_size"],
                              decoding_chunk_size=d["decoding_chunk_size"], num_decoding_left_chunks=d["num_decoding_left_chunks"],
                              ctc_weight=d["ctc_weight"], reverse_weight=d["reverse_weight"])
        assert res[0]["text"] == case["expected"]["text"], case["id"]


def test_wenet_intermediates() -> None:
    """Encoder, CTC, streaming caches and decoder log-probs on WeNet's own fbank, to 1e-4."""
    model = engine().module
    feats = torch.from_numpy(MIDS["feats"])
    assert np.abs(u2pp().task.frontend.extract(read_wave("example.wav")) - FBANK["example"]).max() < 5e-3
    with torch.inference_mode():
        for name, chunk in (("full", -1), ("chunk16", 16)):
            enc, _ = model.encode(feats, torch.from_numpy(MIDS["feats_len"]), chunk)
            assert np.abs(enc.numpy() - MIDS[f"encoder_out_{name}"]).max() < 1e-4
            assert np.abs(model.ctc_log_probs(enc).numpy() - MIDS[f"ctc_logprobs_{name}"]).max() < 1e-4
        assert np.abs(model.encode_chunk_by_chunk(feats, 16).numpy() - MIDS["encoder_out_stream16"]).max() < 1e-4
        att = cnn = torch.zeros(0, 0, 0, 0)
        for i in range(2):
            out, att, cnn = model.encoder.forward_chunk(feats[:, i * 64 : i * 64 + 67], i * 16, -1, att, cnn)
            for name, got in (("out", out), ("att_cache", att), ("cnn_cache", cnn)):
                assert np.abs(got.numpy() - MIDS[f"stream16_chunk{i}_{name}"]).max() < 1e-4, name
        enc, _ = model.encode(feats, torch.from_numpy(MIDS["feats_len"]))
        hyps = torch.from_numpy(MIDS["rescoring_hyps_in"])
        lens = 1 + (hyps[:, 1:] != model.eos).sum(1)
        l2r, r2l = model.decoder_log_probs(enc, hyps, lens, reverse=True)
    for got, want in ((l2r, MIDS["rescoring_l2r_logp"]), (r2l, MIDS["rescoring_r2l_logp"])):
        valid = np.arange(want.shape[1])[None] < lens.numpy()[:, None]
        assert np.abs(got.numpy() - want)[valid].max() < 1e-4


def test_u2_timestamps_and_pipeline() -> None:
    """CTC timestamps in ``timestamp`` (one per character) and the VAD -> U2 -> punctuation pipeline."""
    res = u2pp().generate(input=str(PARITY / "audio" / "example.wav"), output_timestamp=True, reverse_weight=0.3)[0]
    case = next(c for c in CASES if c["id"] == "u2pp_conformer_tiny/example/full/attention_rescoring")
    assert res["text"] == case["expected"]["text"]
    assert res["timestamp"] == [[w["start"], w["end"]] for w in case["expected"]["runtime_word_pieces"]]
    from tests.conftest import BUNDLED_VAD

    piped = AutoModel(model=str(U2PP), vad_model=str(BUNDLED_VAD), punc_model=str(MODELS / "ct_punc_tiny"),
                      disable_pbar=True).generate(input=str(PARITY / "audio" / "pub_concat.wav"), output_timestamp=True)[0]
    assert piped["text"] and len(piped["timestamp"]) > 0


@pytest.mark.parametrize("kwargs, fragment", [
    ({"decoding_method": "beam"}, "decoding_method='beam'"),
    ({"decoding_chunk_size": 0}, "decoding_chunk_size=0"),
    ({"decoding_chunk_size": 2.5}, "decoding_chunk_size=2.5"),
    ({"beam_size": 0}, "beam_size=0"),
    ({"num_decoding_left_chunks": -2}, "num_decoding_left_chunks=-2"),
    ({"reverse_weight": 1.5}, "reverse_weight=1.5"),
    ({"ctc_weight": -1}, "ctc_weight=-1"),
    ({"decoding_method": "attention", "output_timestamp": True}, "no CTC timestamps"),
])
def test_u2_bad_search_options(kwargs: dict, fragment: str) -> None:
    with pytest.raises(OptionError, match=fragment.replace("(", r"\(").replace(".", r"\.")):
        u2pp().generate(input=str(PARITY / "audio" / "example.wav"), **kwargs)


def test_u2_folder_errors(tmp_path) -> None:
    """A WeNet folder without units.txt, or with several checkpoints and no final.pt, is a clear ConfigError."""
    for name in ("train.yaml", "global_cmvn"):
        (tmp_path / name).write_bytes((U2PP / name).read_bytes())
    with pytest.raises(ConfigError, match="units.txt"):
        AutoModel(model=str(tmp_path))
    (tmp_path / "units.txt").write_bytes((U2PP / "units.txt").read_bytes())
    for name in ("avg_5.pt", "epoch_9.pt"):
        (tmp_path / name).write_bytes((U2PP / "final.pt").read_bytes())
    with pytest.raises(ConfigError, match="init_param"):
        AutoModel(model=str(tmp_path))
    (tmp_path / "epoch_9.pt").unlink()
    assert AutoModel(model=str(tmp_path), disable_pbar=True).generate(input=str(PARITY / "audio" / "example.wav"))[0]["text"]


def test_u2_short_input_gives_empty_text() -> None:
    """Audio shorter than the subsampling's receptive field (7 fbank frames) decodes to nothing, not an error."""
    res = u2pp().generate(input=[np.zeros(800, dtype=np.float32), read_wave("example.wav")], output_timestamp=True)
    assert res[0]["text"] == "" and res[0]["timestamp"] == [] and res[1]["text"]
