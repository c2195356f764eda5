"""Export to ONNX (fp32 / int8), TorchScript and TensorRT: file layout, graph contracts, equality with PyTorch."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from conftest import ALL_MODELS, ASR_MODELS, PUNC_MODELS, auto, exported, model_path, read_wave
from funasr.auto_model import AutoModel
from funasr.bin.export import from_hydra_style, main
from funasr.errors import ExportError
from funasr.export import model_graphs
from funasr.hotword import hotword_ids

TIMESTAMP_MODELS = {"bicif_paraformer_tiny", "seaco_paraformer_tiny"}
HOTWORD_MODELS = {"seaco_paraformer_tiny", "contextual_paraformer_tiny"}


def speech_batch(name: str) -> tuple[np.ndarray, np.ndarray]:
    """Three padded utterances of different lengths through the model's frontend."""
    waves = [read_wave("example.wav"), read_wave("sample.wav"), read_wave("example.wav")[:20000]]
    return auto(name).task.frontend(waves)


def hotword_rows(name: str, words: list[str]) -> torch.Tensor:
    task = auto(name).task
    with torch.inference_mode():
        return task.net.encode_hotwords(hotword_ids(words, task.tokenizer, sos=task.net.module.sos))


def torch_asr(name: str, feats: np.ndarray, lens: np.ndarray, bias: torch.Tensor = None) -> dict[str, np.ndarray]:
    """The eager model's log-probabilities, token counts and (for timestamp models) upsampled weights."""
    model = auto(name).task.net.module
    with torch.inference_mode():
        enc, enc_lens = model.encode(torch.from_numpy(feats), torch.from_numpy(lens))
        cif = model.predict(enc, enc_lens)
        out = {"logits": model.decode(enc, enc_lens, cif, bias=bias).numpy(), "token_num": cif.token_num.numpy()}
        if name in TIMESTAMP_MODELS:
            out["us_alphas"] = model.predictor.upsampled_alphas(enc, enc_lens, cif.token_num).numpy()
    return out


def onnx_feed(name: str, feats: np.ndarray, lens: np.ndarray, bias: torch.Tensor = None) -> dict[str, np.ndarray]:
    feed = {"speech": feats, "speech_lengths": lens.astype(np.int32)}
    if name in HOTWORD_MODELS:
        dim = auto(name).task.net.module.bias_encoder.hidden_size
        rows = np.zeros((1, dim), np.float32) if bias is None else bias.numpy()  # all zero: no hotwords
        feed["bias_embed"] = np.ascontiguousarray(np.broadcast_to(rows, (len(lens),) + rows.shape))
    return feed


def assert_asr_equal(got: list, want: dict[str, np.ndarray], lens: np.ndarray) -> None:
    """Graph outputs equal the eager ones on every item's valid tokens and frames."""
    logits, token_num = got[0], got[1]
    np.testing.assert_array_equal(token_num, want["token_num"])
    for b, n in enumerate(want["token_num"]):
        np.testing.assert_allclose(logits[b, :n], want["logits"][b, :n], atol=2e-4)
        np.testing.assert_array_equal(logits[b, :n].argmax(-1), want["logits"][b, :n].argmax(-1))
    if "us_alphas" in want:
        for b, n in enumerate(lens):
            np.testing.assert_allclose(got[2][b, : 3 * n], want["us_alphas"][b, : 3 * n], atol=1e-5)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


# ---- files, names, graph contracts ----------------------------------------------------------


@pytest.mark.parametrize("name", ALL_MODELS)
def test_folder_is_self_contained(export_root, name):
    out = exported(export_root, name)
    files = set(os.listdir(out))
    assert {"model.onnx", "model_quant.onnx", "config.yaml"} <= files
    assert "model.pt" not in files
    expected = {"fsmn-vad": {"am.mvn", "LICENSE.md", "configuration.json"}}.get(name, set())
    expected |= {"am.mvn", "tokens.json"} if name in ASR_MODELS else set()
    expected |= {"tokens.json"} if name in PUNC_MODELS else set()
    expected |= {"jieba_usr_dict"} if name == "ct_punc_jieba_tiny" else set()
    expected |= {"model_eb.onnx", "model_eb_quant.onnx"} if name in HOTWORD_MODELS else set()
    assert expected <= files


def _io(path: Path) -> tuple[dict, dict]:
    graph = onnx.load(str(path)).graph

    def dims(v):
        return [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]

    return {v.name: dims(v) for v in graph.input}, {v.name: dims(v) for v in graph.output}


@pytest.mark.parametrize("name", ASR_MODELS)
def test_asr_graph_contract(export_root, name):
    inputs, outputs = _io(exported(export_root, name) / "model.onnx")
    want_in = ["speech", "speech_lengths"] + (["bias_embed"] if name in HOTWORD_MODELS else [])
    want_out = ["logits", "token_num"] + (["us_alphas", "us_cif_peak"] if name in TIMESTAMP_MODELS else [])
    assert list(inputs) == want_in and list(outputs) == want_out
    assert inputs["speech"] == ["batch_size", "feats_length", 560]
    assert inputs["speech_lengths"] == ["batch_size"]
    assert outputs["logits"][:2] == ["batch_size", "logits_length"]
    if name in HOTWORD_MODELS:
        assert inputs["bias_embed"][:2] == ["batch_size", "num_hotwords"]
        eb_in, eb_out = _io(exported(export_root, name) / "model_eb.onnx")
        assert eb_in == {"hotword": ["num_hotwords", "hotword_length"]}
        assert list(eb_out) == ["hw_embed"] and eb_out["hw_embed"][:2] == ["hotword_length", "num_hotwords"]


def test_vad_and_punc_graph_contracts(export_root):
    inputs, outputs = _io(exported(export_root, "fsmn-vad") / "model.onnx")
    # FunASR's layout with a batch axis (its graph fixes it at 1): many streams per call
    assert inputs == {"speech": ["batch_size", "feats_length", 400], **{f"in_cache{i}": ["batch_size", 128, 19, 1] for i in range(4)}}
    assert list(outputs) == ["logits"] + [f"out_cache{i}" for i in range(4)]
    assert outputs["logits"] == ["batch_size", "feats_length", 248]  # (out_cache shapes are checked when run, below)
    inputs, outputs = _io(exported(export_root, "ct_punc_tiny") / "model.onnx")
    assert inputs == {"inputs": ["batch_size", "text_length"], "text_lengths": ["batch_size"]}
    assert outputs == {"logits": ["batch_size", "text_length", 6]}


@pytest.mark.parametrize("name", ["paraformer_tiny", "seaco_paraformer_tiny"])
def test_quantisation_keeps_output_layers_float(export_root, name):
    nodes = onnx.load(str(exported(export_root, name) / "model_quant.onnx")).graph.node
    float_matmuls = {n.name for n in nodes if n.op_type == "MatMul"}
    assert "/decoder/output_layer/MatMul" in float_matmuls
    assert "/predictor/cif_output/MatMul" in float_matmuls
    assert "/encoder/encoders.0/feed_forward/w_1/MatMul" not in float_matmuls
    assert any(n.op_type == "MatMulInteger" for n in nodes)
    assert not any("output" in n.name for n in nodes if n.op_type == "MatMulInteger")


# ---- ONNX fp32 and int8 against PyTorch -------------------------------------------------------


@pytest.mark.parametrize("name", ASR_MODELS)
def test_onnx_equals_pytorch(export_root, name):
    out = exported(export_root, name)
    fp32 = ort.InferenceSession(str(out / "model.onnx"))
    int8 = ort.InferenceSession(str(out / "model_quant.onnx"))
    bias = hotword_rows(name, ["今天", "朋友", "电话"]) if name in HOTWORD_MODELS else None
    feats, lens = speech_batch(name)
    for rows in ([0, 1, 2], [1]):  # batch of three (padded), then one alone: the shapes are dynamic
        f, n = feats[rows, : lens[rows].max()], lens[rows]
        want = torch_asr(name, f, n, bias)
        assert_asr_equal(fp32.run(None, onnx_feed(name, f, n, bias)), want, n)
        logits = int8.run(None, onnx_feed(name, f, n, bias))[0]
        for b, k in enumerate(want["token_num"]):
            assert cosine(logits[b, :k], want["logits"][b, :k]) >= 0.99


def test_seaco_zero_bias_means_no_hotwords_and_many_hotwords_are_filtered(export_root):
    name = "seaco_paraformer_tiny"
    session = ort.InferenceSession(str(exported(export_root, name) / "model.onnx"))
    feats, lens = speech_batch(name)
    assert_asr_equal(session.run(None, onnx_feed(name, feats, lens)), torch_asr(name, feats, lens), lens)
    tokens = [t for t in auto(name).task.tokenizer.token_list if "\u4e00" <= t <= "\u9fff"]
    distinct = [a + b for a, b in zip(tokens[:70], tokens[70:140])]
    unknown = [chr(0x4E00 + 7 * i) + chr(0x4E00 + 13 * i) for i in range(70)]  # many equal rows (<unk> <unk>)
    for words in (distinct, unknown):  # more than the 50 hotwords kept per utterance
        bias = hotword_rows(name, words)
        assert_asr_equal(session.run(None, onnx_feed(name, feats, lens, bias)), torch_asr(name, feats, lens, bias), lens)


@pytest.mark.parametrize("name", sorted(HOTWORD_MODELS))
def test_hotword_embedder_equals_pytorch(export_root, name):
    session = ort.InferenceSession(str(exported(export_root, name) / "model_eb.onnx"))
    task = auto(name).task
    ids = hotword_ids(["今天", "朋友电话", "a"], task.tokenizer, sos=task.net.module.sos)
    padded = np.zeros((len(ids), max(map(len, ids))), np.int32)
    for i, h in enumerate(ids):
        padded[i, : len(h)] = h
    (hw_embed,) = session.run(None, {"hotword": padded})
    last = hw_embed[[len(h) - 1 for h in ids], np.arange(len(ids))]
    np.testing.assert_allclose(last, hotword_rows(name, ["今天", "朋友电话", "a"]).numpy(), atol=1e-5)


def test_vad_onnx_in_chunks_equals_pytorch(export_root):
    out = exported(export_root, "fsmn-vad")
    feats = np.random.default_rng(0).standard_normal((1, 250, 400)).astype(np.float32)
    with torch.inference_mode():
        want, _ = auto("fsmn-vad").task.net.module(torch.from_numpy(feats))
    for file, check in (("model.onnx", "equal"), ("model_quant.onnx", "cosine")):
        session = ort.InferenceSession(str(out / file))
        caches = [np.zeros((1, 128, 19, 1), np.float32) for _ in range(4)]
        scores = []
        for chunk in (feats[:, :100], feats[:, 100:]):
            got, *caches = session.run(None, {"speech": chunk, **{f"in_cache{i}": c for i, c in enumerate(caches)}})
            assert [c.shape for c in caches] == [(1, 128, 19, 1)] * 4
            scores.append(got)
        got = np.concatenate(scores, axis=1)
        if check == "equal":
            np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
        else:
            assert cosine(np.log(got), np.log(want.numpy())) >= 0.99


@pytest.mark.parametrize("name", PUNC_MODELS)
def test_punc_onnx_equals_pytorch(export_root, name):
    out = exported(export_root, name)
    model = auto(name).task.net.module
    ids = np.random.default_rng(1).integers(1, model.embed.num_embeddings, (2, 37)).astype(np.int32)
    lens = np.array([37, 11], np.int32)
    for file in ("model.onnx", "model_quant.onnx"):
        (logits,) = ort.InferenceSession(str(out / file)).run(None, {"inputs": ids, "text_lengths": lens})
        for b, n in enumerate(lens):
            with torch.inference_mode():
                want = model(torch.from_numpy(ids[b : b + 1, :n]).long(), torch.tensor([n])).numpy()[0]
            if file == "model.onnx":
                np.testing.assert_allclose(logits[b, :n], want, atol=1e-4)
            else:
                assert cosine(logits[b, :n], want) >= 0.99


# ---- TorchScript ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ASR_MODELS)
def test_torchscript_equals_pytorch(export_root, name):
    out = exported(export_root, name, "torchscript")
    traced = torch.jit.load(str(out / "model.torchscript"))
    bias = hotword_rows(name, ["今天", "朋友"]) if name in HOTWORD_MODELS else None
    feats, lens = speech_batch(name)
    feed = onnx_feed(name, feats, lens, bias)
    with torch.inference_mode():
        got = [t.numpy() for t in traced(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feed.values()))]
    assert_asr_equal(got, torch_asr(name, feats, lens, bias), lens)
    if name in HOTWORD_MODELS:
        assert (out / "model_eb.torchscript").is_file()


def test_torchscript_vad_and_punc(export_root):
    vad = torch.jit.load(str(exported(export_root, "fsmn-vad", "torchscript") / "model.torchscript"))
    feats = torch.randn(1, 50, 400)
    with torch.inference_mode():
        scores, *caches = vad(feats, *[torch.zeros(1, 128, 19, 1)] * 4)
        want, want_caches = auto("fsmn-vad").task.net.module(feats)
    torch.testing.assert_close(scores, want)
    torch.testing.assert_close(caches[0][..., 0].transpose(1, 2), want_caches[0])
    punc = torch.jit.load(str(exported(export_root, "ct_punc_tiny", "torchscript") / "model.torchscript"))
    ids = torch.randint(1, 100, (1, 23), dtype=torch.int32)
    with torch.inference_mode():
        torch.testing.assert_close(punc(ids, torch.tensor([23], dtype=torch.int32)), auto("ct_punc_tiny").task.net.module(ids.long(), torch.tensor([23])))


# ---- TensorRT ------------------------------------------------------------------------------


def _has_tensorrt() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("name", ["fsmn-vad", "seaco_paraformer_tiny", "ct_punc_tiny"])
def test_tensorrt_profiles_cover_every_dynamic_input(name):
    for graph in model_graphs(auto(name).task):
        shapes = graph.profile_shapes()
        assert list(shapes) == graph.input_names
        for example, (lo, opt, hi) in zip(graph.inputs, shapes.values()):
            assert len(lo) == example.dim() and all(a <= b <= c for a, b, c in zip(lo, opt, hi))
            fixed = [i for i in range(example.dim()) if lo[i] == hi[i]]
            assert all(lo[i] == example.shape[i] for i in fixed)
        if name != "fsmn-vad":
            assert shapes[graph.input_names[0]][2][:2] >= (16, 256)  # batches and long inputs


def graph_feeds(name: str) -> dict[str, dict[str, np.ndarray]]:
    """Inputs for each graph of ``name``: real speech (with hotwords), random VAD features, random punctuation ids."""
    if name == "fsmn-vad":
        feats = np.random.default_rng(0).standard_normal((1, 250, 400)).astype(np.float32)
        return {"model": {"speech": feats, **{f"in_cache{i}": np.zeros((1, 128, 19, 1), np.float32) for i in range(4)}}}
    if name in PUNC_MODELS:
        ids = np.random.default_rng(1).integers(1, auto(name).task.net.module.embed.num_embeddings, (2, 37)).astype(np.int32)
        return {"model": {"inputs": ids, "text_lengths": np.array([37, 11], np.int32)}}
    words = ["今天", "朋友电话", "a"]
    feats, lens = speech_batch(name)
    feeds = {"model": onnx_feed(name, feats, lens, hotword_rows(name, words) if name in HOTWORD_MODELS else None)}
    if name in HOTWORD_MODELS:
        task = auto(name).task
        ids = hotword_ids(words, task.tokenizer, sos=task.net.module.sos)
        feeds["model_eb"] = {"hotword": np.array([h + [0] * (10 - len(h)) for h in ids], np.int32)}
    return feeds


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fp16_graphs_for_tensorrt_follow_the_float32_graphs(export_root, tmp_path, name):
    from funasr.export.onnx import export_onnx

    folder, feeds = exported(export_root, name), graph_feeds(name)
    for graph in model_graphs(auto(name).task, torch.float16):
        full = folder / f"{graph.name}.onnx"
        with torch.no_grad():
            half = export_onnx(graph, tmp_path / f"{graph.name}_fp16.onnx")
        assert _io_types(half) == _io_types(full)  # float32 in and out, as the runtimes feed them
        weights = {t.data_type for t in onnx.load(str(half)).graph.initializer if np.prod(t.dims) >= 4096}
        assert onnx.TensorProto.FLOAT16 in weights
        want = ort.InferenceSession(str(full)).run(None, feeds[graph.name])
        got = ort.InferenceSession(str(half)).run(None, feeds[graph.name])
        for out, a, b in zip(graph.output_names, want, got):
            assert a.dtype == b.dtype and a.shape == b.shape, out
            if a.dtype.kind in "iu":
                np.testing.assert_array_equal(a, b, err_msg=out)  # token counts: the CIF runs in float32
            else:
                assert cosine(a, b) >= 0.999, out
        if graph.output_names[:2] == ["logits", "token_num"]:
            agree = [(want[0][i, :n].argmax(-1) == got[0][i, :n].argmax(-1)).mean() for i, n in enumerate(want[1])]
            assert min(agree) >= 0.95


def _io_types(path: Path) -> dict[str, int]:
    graph = onnx.load(str(path)).graph
    return {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.output]}


@pytest.mark.skipif(_has_tensorrt(), reason="TensorRT is installed here")
def test_tensorrt_missing_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match="tensorrt"):
        auto("ct_punc_tiny").export(type="tensorrt", output_dir=str(tmp_path))
    assert not (tmp_path / "model.onnx").exists()  # nothing half-written


@pytest.mark.skipif(not (_has_tensorrt() and torch.cuda.is_available()), reason="needs TensorRT and a CUDA GPU")
@pytest.mark.parametrize("fp16", [False, True])
@pytest.mark.parametrize("name", ["ct_punc_tiny", "paraformer_tiny", "bicif_paraformer_tiny"])
def test_tensorrt_engine_matches_pytorch(tmp_path, name, fp16):
    from funasr.export.tensorrt import TensorRTRunner

    auto(name).export(type="tensorrt", fp16=fp16, output_dir=str(tmp_path))
    runner = TensorRTRunner(tmp_path / "model.plan")
    feed = graph_feeds(name)["model"]
    got = [t.cpu().numpy() for t in runner(*(torch.from_numpy(np.ascontiguousarray(v)) for v in feed.values()))]
    if fp16:  # the engine computes the fp16 graph: compare with it
        want = ort.InferenceSession(str(tmp_path / "model_fp16.onnx")).run(None, feed)
        for a, b in zip(want, got):
            assert a.shape == b.shape and (np.array_equal(a, b) if a.dtype.kind in "iu" else cosine(a, b) >= 0.999)
    elif name.startswith("ct_punc"):
        with torch.inference_mode():
            want = auto(name).task.net.module(torch.from_numpy(feed["inputs"][:1]).long(), torch.tensor([37]))
        torch.testing.assert_close(torch.from_numpy(got[0][:1]), want, atol=1e-3, rtol=1e-3)
    else:
        feats, lens = speech_batch(name)
        assert_asr_equal(got, torch_asr(name, feats, lens), lens)


# ---- API and command line -----------------------------------------------------------------


def test_unknown_type_or_option_is_an_error(tmp_path):
    with pytest.raises(ExportError, match="onnx, torchscript, tensorrt"):
        auto("ct_punc_tiny").export(type="openvino", output_dir=str(tmp_path))
    with pytest.raises(ExportError, match="quantise"):
        auto("ct_punc_tiny").export(quantise=True, output_dir=str(tmp_path))
    with pytest.raises(ExportError, match="weight_type"):
        auto("ct_punc_tiny").export(quantize=True, weight_type="int4", output_dir=str(tmp_path))


def test_funasr_export_arguments_run_unchanged(tmp_path):
    out = auto("ct_punc_tiny").export(type="onnx", quantize=False, opset_version=14, calib_num=100, output_dir=str(tmp_path))
    assert (Path(out) / "model.onnx").is_file()


def test_int8_weight_type(export_root, tmp_path):
    auto("ct_punc_tiny").export(quantize=True, weight_type="int8", output_dir=str(tmp_path))
    weights = {
        i.name: i.data_type for i in onnx.load(str(tmp_path / "model_quant.onnx")).graph.initializer if i.name.endswith("_quantized")
    }
    reference = {
        i.name: i.data_type
        for i in onnx.load(str(exported(export_root, "ct_punc_tiny") / "model_quant.onnx")).graph.initializer
        if i.name.endswith("_quantized")
    }
    assert weights and set(weights.values()) == {onnx.TensorProto.INT8}
    assert reference and set(reference.values()) == {onnx.TensorProto.UINT8}  # FunASR's setting, the default


def test_export_returns_the_folder_and_defaults_to_the_model_dir(tmp_path):
    import shutil

    model_dir = tmp_path / "punc"
    shutil.copytree(model_path("ct_punc_tiny"), model_dir)
    assert AutoModel(model=str(model_dir), disable_pbar=True).export() == str(model_dir)
    assert (model_dir / "model.onnx").is_file() and (model_dir / "model.pt").is_file()


def test_cli(tmp_path, capsys):
    assert main(["--model", str(model_path("ct_punc_tiny")), "--type", "onnx", "--quantize", "--output-dir", str(tmp_path / "a")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "a")
    assert {"model.onnx", "model_quant.onnx", "tokens.json"} <= set(os.listdir(tmp_path / "a"))
    hydra = [f"++model={model_path('ct_punc_tiny')}", "++type=torchscript", "++quantize=false", f"++output_dir={tmp_path / 'b'}"]
    assert main(hydra) == 0
    assert (tmp_path / "b" / "model.torchscript").is_file()
    assert main(["--model", str(tmp_path / "missing"), "--output-dir", str(tmp_path / "c")]) == 1
    assert "missing" in capsys.readouterr().err


def test_hydra_style_arguments():
    assert from_hydra_style(["++model=x", "++quantize=true", "++output_dir=o", "++calib_num=3"]) == [
        "--model", "x", "--quantize", "--output-dir", "o",
    ]
    assert from_hydra_style(["++quantize=false", "--type", "onnx"]) == ["--no-quantize", "--type", "onnx"]


def test_large_embedding_tables_are_stored_in_8_bits(export_root, tmp_path):
    from funasr.export.quantize import quantize_onnx

    src = exported(export_root, "ct_punc_tiny") / "model.onnx"
    dst = quantize_onnx(src, tmp_path / "model_quant.onnx", large_table=1000)  # the tiny table counts as large here
    inits = {i.name: i for i in onnx.load(str(dst)).graph.initializer}
    assert inits["embed.weight_quantized"].data_type == onnx.TensorProto.UINT8 and "embed.weight" not in inits
    default = {i.name for i in onnx.load(str(exported(export_root, "ct_punc_tiny") / "model_quant.onnx")).graph.initializer}
    assert "embed.weight" in default  # a small table stays float
    feed = {"inputs": np.arange(1, 24, dtype=np.int32)[None], "text_lengths": np.array([23], dtype=np.int32)}
    want = ort.InferenceSession(str(src)).run(None, feed)[0]
    got = ort.InferenceSession(str(dst)).run(None, feed)[0]
    assert cosine(got, want) >= 0.99 and (got.argmax(-1) == want.argmax(-1)).mean() >= 0.9
