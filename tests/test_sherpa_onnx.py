"""sherpa-onnx loads ``funasr-export --format sherpa-onnx`` folders and gives our engines' text on the parity models."""
from __future__ import annotations

import sys
from difflib import SequenceMatcher

import numpy as np
import onnx
import pytest

from conftest import RUNTIME, auto, exported, norm_text, parity_cases, read_wave
from funasr.bin.export import parse_args
from funasr.errors import ExportError

sherpa_onnx = pytest.importorskip("sherpa_onnx")
sys.path.insert(0, str(RUNTIME))
import funasr_onnx  # noqa: E402

WAVES = ["example.wav", "sample.wav"]


@pytest.fixture(scope="module")
def sherpa_dir(tmp_path_factory):
    """``name`` exported for sherpa-onnx (fp32 and int8) once per module."""
    root = tmp_path_factory.mktemp("sherpa")

    def get(name: str):
        out = root / name
        if not out.is_dir():
            auto(name).export(type="sherpa-onnx", quantize=True, output_dir=str(out))
        return out

    return get


def recognize(recognizer, wave: np.ndarray) -> str:
    """sherpa-onnx's offline text of one waveform."""
    stream = recognizer.create_stream()
    stream.accept_waveform(16000, wave)
    recognizer.decode_stream(stream)
    return stream.result.text


def test_offline_paraformer_same_text_as_pytorch(sherpa_dir):
    out = sherpa_dir("paraformer_tiny")
    meta = {p.key: p.value for p in onnx.load(str(out / "model.onnx"), load_external_data=False).metadata_props}
    assert (meta["lfr_window_size"], meta["lfr_window_shift"], meta["vocab_size"]) == ("7", "6", "412")
    assert len(meta["neg_mean"].split(",")) == len(meta["inv_stddev"].split(",")) == 560
    assert (out / "tokens.txt").read_text(encoding="utf-8").splitlines()[2] == "</s> 2"
    recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(paraformer=str(out / "model.onnx"), tokens=str(out / "tokens.txt"))
    for name in WAVES:
        wave = read_wave(name)
        ours = auto("paraformer_tiny").generate(input=wave)[0]["text"]
        got = recognize(recognizer, wave)
        assert got.strip() and norm_text(got, spaces=False) == norm_text(ours, spaces=False), name


def test_offline_paraformer_int8_close_to_funasr_onnx(sherpa_dir, export_root, monkeypatch):
    """int8 on sherpa-onnx's own onnxruntime build: near-tie argmaxes of the random-weight model may flip."""
    monkeypatch.setenv("FUNASR_ONNX_INT8", "keep")  # the file's integers, as sherpa-onnx runs them (not 7-bit ones on AVX2)
    out = sherpa_dir("paraformer_tiny")
    ours = funasr_onnx.AutoModel(model=str(exported(export_root, "paraformer_tiny")), quantize=True, intra_op_num_threads=1)
    recognizer = sherpa_onnx.OfflineRecognizer.from_paraformer(paraformer=str(out / "model.int8.onnx"), tokens=str(out / "tokens.txt"))
    for name in WAVES:
        wave = read_wave(name)
        got = norm_text(recognize(recognizer, wave), spaces=False)
        want = norm_text(ours.generate(input=wave)[0]["text"], spaces=False)
        assert SequenceMatcher(None, got, want).ratio() >= 0.9, (got, want)


def test_streaming_paraformer_loads_and_decodes(sherpa_dir):
    out = sherpa_dir("paraformer_streaming_tiny")
    meta = {p.key: p.value for p in onnx.load(str(out / "encoder.onnx"), load_external_data=False).metadata_props}
    assert (meta["encoder_output_size"], meta["decoder_num_blocks"], meta["decoder_kernel_size"]) == ("64", "3", "11")
    texts = []
    for suffix in ("onnx", "int8.onnx"):
        recognizer = sherpa_onnx.OnlineRecognizer.from_paraformer(
            tokens=str(out / "tokens.txt"), encoder=str(out / f"encoder.{suffix}"), decoder=str(out / f"decoder.{suffix}"), num_threads=1
        )
        for _ in range(2):  # deterministic
            stream = recognizer.create_stream()
            stream.accept_waveform(16000, read_wave("example.wav"))
            stream.accept_waveform(16000, np.zeros(8000, dtype=np.float32))  # flushes the last chunk
            stream.input_finished()
            while recognizer.is_ready(stream):
                recognizer.decode_stream(stream)
            texts.append(recognizer.get_result(stream))
    chars = set("".join(auto("paraformer_streaming_tiny").task.tokenizer.token_list))
    assert texts[0] == texts[1] and texts[2] == texts[3] and len(texts[0]) >= 10
    assert set(texts[0].replace(" ", "")) <= chars


def test_punctuation_same_text(sherpa_dir):
    out = sherpa_dir("ct_punc_tiny")
    for model in ("model.onnx", "model.int8.onnx"):
        config = sherpa_onnx.OfflinePunctuationConfig(model=sherpa_onnx.OfflinePunctuationModelConfig(ct_transformer=str(out / model)))
        punc = sherpa_onnx.OfflinePunctuation(config)
        cases = [c for c in parity_cases("punc/ct_punc_tiny/") if c["input"].isascii() is False and " " not in c["input"]]
        assert len(cases) == 3
        for case in cases:
            assert punc.add_punctuation(case["input"]) == case["expected"][0]["text"] == auto("ct_punc_tiny").generate(input=case["input"])[0]["text"]


def test_unsupported_models_refused_before_writing(tmp_path):
    with pytest.raises(ExportError, match="sherpa-onnx.*FSMN-VAD"):
        auto("fsmn-vad").export(type="sherpa-onnx", output_dir=str(tmp_path / "vad"))
    assert not (tmp_path / "vad").exists()
    assert parse_args(["--model", "x", "--format", "sherpa-onnx"]).type == "sherpa-onnx"
