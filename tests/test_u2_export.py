"""U2 export: the encoder chunk, CTC and decoder graphs (ONNX fp32 / int8, TorchScript, WeNet's final.zip) equal PyTorch, and
funasr_onnx decodes the exported folder (full context, chunked, streams) as funasr does on PyTorch."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch

from tests.conftest import PARITY, ROOT, RUNTIME, read_wave
from funasr.auto_model import AutoModel
from tests.test_u2 import CASES, MIDS, U2PP, u2pp

pytestmark = pytest.mark.usefixtures("one_thread")

TOL = 1e-4


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> str:
    return u2pp().export(type="onnx", quantize=True, output_dir=str(tmp_path_factory.mktemp("u2") / "onnx"))


def expected_text(config: str) -> str:
    return next(c for c in CASES if c["id"] == f"u2pp_conformer_tiny/example/{config}/attention_rescoring")["expected"]["text"]


def run_graph(path: str, **feed: np.ndarray) -> list[np.ndarray]:
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return sess.run(None, {k: v for k, v in feed.items() if k in {i.name for i in sess.get_inputs()}})


def test_onnx_graphs_equal_pytorch(exported: str) -> None:
    """Two encoder chunks with their caches, the CTC head and both decoders: ONNX fp32 equals PyTorch (1e-4)."""
    model = u2pp().model
    feats = MIDS["feats"]
    att = np.zeros((3, 4, 0, 32), dtype=np.float32)
    cnn = np.zeros((3, 1, 64, 7), dtype=np.float32)
    t_att, t_cnn = torch.zeros(0, 0, 0, 0), torch.zeros(0, 0, 0, 0)
    with torch.inference_mode():
        for i in range(2):
            window = feats[:, i * 64 : i * 64 + 67]
            out, att, cnn = run_graph(f"{exported}/encoder.onnx", chunk=window, offset=np.array(16 * i), att_cache=att, cnn_cache=cnn)
            t_out, t_att, t_cnn = model.encoder.forward_chunk(torch.from_numpy(window), 16 * i, -1, t_att, t_cnn)
            for got, want in ((out, t_out), (att, t_att), (cnn, t_cnn)):
                assert got.shape == tuple(want.shape) and np.abs(got - want.numpy()).max() < TOL
            assert np.abs(out - MIDS[f"stream16_chunk{i}_out"]).max() < TOL
        enc, _ = model.encode(torch.from_numpy(feats), torch.from_numpy(MIDS["feats_len"]))
        (probs,) = run_graph(f"{exported}/ctc.onnx", hidden=enc.numpy())
        assert np.abs(probs - model.ctc_log_probs(enc).numpy()).max() < TOL
        hyps = MIDS["rescoring_hyps_in"]
        lens = (1 + (hyps[:, 1:] != model.eos).sum(1)).astype(np.int64)
        score, r_score = run_graph(f"{exported}/decoder.onnx", hyps=hyps, hyps_lens=lens, encoder_out=enc.numpy())
        l2r, r2l = model.decoder_log_probs(enc, torch.from_numpy(hyps), torch.from_numpy(lens), reverse=True)
    valid = np.arange(hyps.shape[1])[None] < lens[:, None]
    assert np.abs(score - l2r.numpy())[valid].max() < TOL and np.abs(r_score - r2l.numpy())[valid].max() < TOL


def test_torchscript_graphs_equal_pytorch(tmp_path) -> None:
    folder = u2pp().export(type="torchscript", output_dir=str(tmp_path / "ts"))
    model = u2pp().model
    encoder = torch.jit.load(f"{folder}/encoder.torchscript")
    window = torch.from_numpy(MIDS["feats"][:, :67])
    att, cnn = torch.zeros(3, 4, 0, 32), torch.zeros(3, 1, 64, 7)
    with torch.inference_mode():
        out, att, cnn = encoder(window, torch.tensor(0), att, cnn)
        out2, _, _ = encoder(torch.from_numpy(MIDS["feats"][:, 64:131]), torch.tensor(16), att, cnn)
        t_out, t_att, t_cnn = model.encoder.forward_chunk(window, 0, -1, torch.zeros(0, 0, 0, 0), torch.zeros(0, 0, 0, 0))
        t_out2, _, _ = model.encoder.forward_chunk(torch.from_numpy(MIDS["feats"][:, 64:131]), 16, -1, t_att, t_cnn)
    assert torch.allclose(out, t_out, atol=TOL) and torch.allclose(out2, t_out2, atol=TOL)
    check_wenet_final_zip(folder, model)


def check_wenet_final_zip(folder: str, model: torch.nn.Module) -> None:
    """final.zip has the methods WeNet's LibTorch runtime calls, equal to PyTorch, and WeNet's checkpoint keys; the folder
    (train.yaml, units.txt, global_cmvn, final.zip: a WeNet runtime package, no final.pt) loads through AutoModel."""
    jit = torch.jit.load(f"{folder}/final.zip")
    assert (jit.subsampling_rate(), jit.right_context(), jit.sos_symbol(), jit.eos_symbol(), jit.is_bidirectional_decoder()) == (
        4, 6, model.sos, model.eos, True)
    assert set(jit.state_dict()) == set(torch.load(U2PP / "final.pt", map_location="cpu", weights_only=True))
    feats = torch.from_numpy(MIDS["feats"])
    with torch.inference_mode():
        out, att, cnn = jit.forward_encoder_chunk(feats[:, :67], 0, -1)  # WeNet's runtime starts with empty caches
        out2, att2, _ = jit.forward_encoder_chunk(feats[:, 64:131], 16, 16, att, cnn)
        t_out, t_att, t_cnn = model.encoder.forward_chunk(feats[:, :67], 0, -1, torch.zeros(0, 0, 0, 0), torch.zeros(0, 0, 0, 0))
        t_out2, t_att2, _ = model.encoder.forward_chunk(feats[:, 64:131], 16, 16, t_att, t_cnn)
        assert att2.shape == t_att2.shape == (3, 4, 16, 32)
        for got, want in ((out, t_out), (out2, t_out2), (att2, t_att2)):
            assert torch.allclose(got, want, atol=TOL)
        enc, _ = model.encode(feats, torch.from_numpy(MIDS["feats_len"]))
        assert torch.allclose(jit.ctc_activation(enc), model.ctc_log_probs(enc), atol=TOL)
        hyps = torch.from_numpy(MIDS["rescoring_hyps_in"])
        lens = 1 + (hyps[:, 1:] != model.eos).sum(1)
        l2r, r2l = jit.forward_attention_decoder(hyps, lens, enc, 0.3)
        t_l2r, t_r2l = model.decoder_log_probs(enc, hyps, lens, reverse=True)
        assert torch.allclose(l2r, t_l2r, atol=TOL) and torch.allclose(r2l, t_r2l, atol=TOL)
        assert jit.forward_attention_decoder(hyps, lens, enc)[1].item() == 0.0  # reverse_weight 0: a 0-dim 0.0, as WeNet's
    packaged = AutoModel(model=folder, disable_pbar=True).generate(str(PARITY / "audio" / "example.wav"), reverse_weight=0.3)
    assert packaged[0]["text"] == expected_text("full")


def test_funasr_onnx_decodes_like_pytorch_without_torch(exported: str) -> None:
    """funasr_onnx (torch not importable) on the exported folder: WeNet's texts for full context, chunk 16
    (streamed window by window) and a stream; the int8 graphs decode too."""
    code = r"""
import json, sys
sys.modules["torch"] = None
sys.path[:0] = [sys.argv[2], sys.argv[3]]
import soundfile as sf
import funasr_onnx
m = funasr_onnx.AutoModel(model=sys.argv[1], disable_pbar=True)
wav = sys.argv[4]
out = {"full": m.generate(wav, reverse_weight=0.3)[0]["text"],
       "chunk16": m.generate(wav, reverse_weight=0.3, decoding_chunk_size=16)[0]["text"],
       "left1": m.generate(wav, decoding_method="ctc_prefix_beam_search", decoding_chunk_size=4, num_decoding_left_chunks=1)[0]["text"],
       "int8": funasr_onnx.AutoModel(model=sys.argv[1], quantize=True, disable_pbar=True).generate(wav)[0]["text"]}
task = m.task
s = task.create_stream(16, reverse_weight=0.3)
s.accept_waveform(sf.read(wav, dtype="float32")[0])
s.input_finished()
out["stream"] = task.decode_stream(s)["text"]
print(json.dumps(out, ensure_ascii=False))
"""
    wav = str(PARITY / "audio" / "example.wav")
    res = subprocess.run([sys.executable, "-c", code, exported, str(RUNTIME), str(ROOT), wav], capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    import json

    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["full"] == expected_text("full")
    assert got["chunk16"] == got["stream"] == expected_text("chunk16_stream")
    prefix = next(c for c in CASES if c["id"] == "u2pp_conformer_tiny/example/chunk4_left1_stream/ctc_prefix_beam_search")
    assert got["left1"] == prefix["expected"]["text"]
    assert got["int8"]
