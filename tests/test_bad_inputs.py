"""What bad files, models and values get at load time: a funasr error naming the input and the fix, before any work.

Each test builds the bad thing from real material (the parity clips, copies of the tiny model
folders) and checks the error kind and what its message names. generate() arguments are in
test_bad_arguments.py.
"""
from __future__ import annotations

import io
import logging
import os
import shutil
import socket
import struct
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import funasr.audio
import funasr.hub
from conftest import AUDIO, BUNDLED_VAD, MODELS, RUNTIME, auto, exported, model_path, read_wave
from funasr.audio import Source, decode_source, load_inputs, open_recording
from funasr.auto_model import AutoModel
from funasr.bin.export import main as export_main
from funasr.errors import AudioError, CheckpointError, ConfigError, ExportError, HotwordError, OptionError
from funasr.hotword import read_hotwords

sys.path.insert(0, str(RUNTIME))
import funasr_onnx  # noqa: E402

WAV = AUDIO / "example.wav"


def model_copy(tmp_path: Path, name: str) -> Path:
    """A writable copy of a tiny parity model folder (``fsmn-vad``: the bundled one)."""
    out = tmp_path / name
    shutil.copytree(model_path(name), out)
    return out


def load(model_dir: Path) -> AutoModel:
    return AutoModel(model=str(model_dir), device="cpu", disable_pbar=True)


def wav_bytes(samples: np.ndarray, rate: int = 16000) -> bytes:
    out = io.BytesIO()
    sf.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


# ---- audio files and values ----


def test_torch_integer_tensor_is_scaled_like_numpy():
    pcm = (sf.read(WAV, dtype="int16")[0])[:8000]
    from_numpy = decode_source(Source("n", pcm))
    from_torch = decode_source(Source("t", torch.from_numpy(pcm)))
    np.testing.assert_array_equal(from_torch, from_numpy)
    assert 0.01 < np.abs(from_torch).max() <= 1.0


def test_empty_file_says_empty(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    (item,) = load_inputs(str(empty))
    assert isinstance(item.error, AudioError)
    assert "empty.wav" in str(item.error) and "empty (0 bytes)" in str(item.error) and "ffmpeg" not in str(item.error)


def test_forged_sample_rate_is_refused_before_decoding(tmp_path):
    data = bytearray(wav_bytes(np.zeros(5000, dtype=np.float32)))  # 10 KB
    struct.pack_into("<II", data, 24, 1, 2)  # header: 1 Hz, 2 bytes/s -> 305 MiB at 16 kHz
    forged = tmp_path / "forged.wav"
    forged.write_bytes(bytes(data))
    for source in (Source("f", str(forged)), Source("f", bytes(data))):
        with pytest.raises(AudioError, match=r"sample rate 1 Hz is outside the accepted 1000\.\.384000 Hz"):
            decode_source(source)
    with pytest.raises(AudioError, match="forged.wav.*sample rate 1 Hz"):
        open_recording(Source("f", str(forged)))


@pytest.mark.parametrize("fs", [1, 999, 384001])
def test_implausible_rate_of_samples_is_refused(fs):
    pcm = np.zeros(1000, dtype=np.int16)
    for value in (pcm, pcm.tobytes(), torch.from_numpy(pcm)):
        with pytest.raises(AudioError, match=f"sample rate {fs} Hz"):
            decode_source(Source("k", value), fs=fs)


def test_audio_longer_than_the_limit_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "long.flac"
    sf.write(path, np.zeros(16000 * 30, dtype=np.float32), 16000)  # 30 s of silence: a few KB of FLAC
    monkeypatch.setattr(funasr.audio, "MAX_AUDIO_SECONDS", 10)
    with pytest.raises(AudioError, match=r"long.flac: 30.0 s of audio is longer than the 10 s limit.*FUNASR_MAX_AUDIO_SECONDS"):
        decode_source(Source("k", str(path)))
    with pytest.raises(AudioError, match="longer than the 10 s limit"):
        decode_source(Source("k", np.zeros(8000 * 11, dtype=np.float32)), fs=8000)
    monkeypatch.setattr(funasr.audio, "MAX_AUDIO_SECONDS", None)
    monkeypatch.setenv("FUNASR_MAX_AUDIO_SECONDS", "20")
    with pytest.raises(AudioError, match="longer than the 20 s limit"):
        decode_source(Source("k", path.read_bytes()))
    monkeypatch.setenv("FUNASR_MAX_AUDIO_SECONDS", "40")
    assert len(decode_source(Source("k", str(path)))) == 16000 * 30
    monkeypatch.setenv("FUNASR_MAX_AUDIO_SECONDS", "lots")
    with pytest.raises(AudioError, match="FUNASR_MAX_AUDIO_SECONDS='lots' is not a positive number"):
        decode_source(Source("k", str(path)))


def test_truncated_wav_decodes_what_is_there_with_a_warning(tmp_path, caplog):
    data = WAV.read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="funasr.audio"):
        (item,) = load_inputs(str(cut))
        recording = open_recording(Source("cut", str(cut)))
    whole = read_wave("example.wav")
    np.testing.assert_array_equal(item.waveform, whole[: len(item.waveform)])
    assert 0.4 < len(item.waveform) / len(whole) < 0.6 and recording.length == len(item.waveform)
    warnings = [r.getMessage() for r in caplog.records if "truncated" in r.getMessage()]
    assert len(warnings) == 2 and all(str(cut) in w for w in warnings)


def test_complete_wav_gives_no_truncation_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="funasr.audio"):
        load_inputs(str(WAV))
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


def test_audio_and_hotword_downloads_share_one_timeout(monkeypatch):
    silent = socket.socket()  # accepts connections (the kernel's backlog) and never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/x"
    monkeypatch.setattr(funasr.hub, "URL_TIMEOUT_S", 0.5)
    try:
        start = time.monotonic()
        with pytest.raises(AudioError, match=f"cannot download {url}.wav"):
            decode_source(Source("x", url + ".wav"))
        with pytest.raises(HotwordError, match=f"cannot download {url}.txt"):
            read_hotwords(url + ".txt")
        assert time.monotonic() - start < 10
    finally:
        silent.close()


# ---- hotwords ----


@pytest.mark.parametrize("hotword", [5, ["x", 5], b"x", {"x": 1}, 2.5])
def test_hotwords_that_are_not_text(hotword):
    with pytest.raises(HotwordError, match="hotword=.* is not text"):
        read_hotwords(hotword)


def test_hotword_file_with_a_byte_order_mark(tmp_path):
    path = tmp_path / "hot.txt"
    path.write_text("魔搭\n达摩院\n", encoding="utf-8-sig")
    assert read_hotwords(str(path)) == ["魔搭", "达摩院"]


def test_hotwords_that_are_not_text_in_generate():
    model = auto("seaco_paraformer_tiny")
    for hotword in (5, ["x", 5], b"x", {"x": 1}):
        with pytest.raises(HotwordError, match="is not text"):
            model.generate(input=str(WAV), hotword=hotword)


# ---- model folders ----


def test_named_cmvn_file_missing_is_an_error(tmp_path):
    vad = model_copy(tmp_path, "fsmn-vad")  # configuration.json names am.mvn
    (vad / "am.mvn").unlink()
    with pytest.raises(ConfigError, match=f"{vad}.*CMVN file 'am.mvn'"):
        load(vad)
    asr = model_copy(tmp_path, "paraformer_tiny")
    (asr / "am.mvn").rename(asr / "moved.mvn")
    (asr / "config.yaml").write_text((asr / "config.yaml").read_text().replace("  fs: 16000", "  fs: 16000\n  cmvn_file: am.mvn"))
    with pytest.raises(ConfigError, match="CMVN file 'am.mvn'"):
        load(asr)


def test_no_cmvn_at_all_warns(tmp_path, caplog):
    asr = model_copy(tmp_path, "paraformer_tiny")
    (asr / "am.mvn").unlink()
    with caplog.at_level(logging.WARNING, logger="funasr.config"):
        load(asr)
    assert any("names no CMVN file" in r.getMessage() and str(asr) in r.getMessage() for r in caplog.records)


def test_malformed_tokens_json(tmp_path):
    asr = model_copy(tmp_path, "paraformer_tiny")
    (asr / "tokens.json").write_text('["<blank>", "<s>", ')
    with pytest.raises(ConfigError, match=r"token list .*tokens\.json"):
        load(asr)


def test_empty_checkpoint(tmp_path):
    asr = model_copy(tmp_path, "paraformer_tiny")
    (asr / "model.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"model\.pt is empty \(0 bytes\)"):
        load(asr)


def test_garbage_checkpoint_says_why(tmp_path):
    asr = model_copy(tmp_path, "paraformer_tiny")
    (asr / "model.pt").write_bytes(b"not a checkpoint" * 10)
    with pytest.raises(CheckpointError, match=r"cannot read checkpoint .*model\.pt \(\w+: .+\)"):
        load(asr)


def test_non_finite_weights_are_named(tmp_path):
    asr = model_copy(tmp_path, "paraformer_tiny")
    state = torch.load(asr / "model.pt", map_location="cpu", weights_only=True)
    name = next(k for k, v in state.items() if k.startswith("predictor.") and v.is_floating_point())
    state[name] = torch.full_like(state[name], float("nan"))
    state["decoder.embed.0.weight"][3, 1] = float("inf")
    torch.save(state, asr / "model.pt")
    with pytest.raises(CheckpointError, match=f"NaN or infinite weights in 2 tensor.*{name}"):
        load(asr)


# ---- export ----


def test_export_never_writes_into_the_package(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(BUNDLED_VAD))
    out = load(BUNDLED_VAD).export()
    assert out == str(tmp_path / "exported" / "fsmn-vad") and (Path(out) / "model.onnx").is_file()
    assert export_main(["--model", "fsmn-vad", "--type", "torchscript"]) == 0
    assert (tmp_path / "exported" / "fsmn-vad" / "model.torchscript").is_file()
    assert sorted(os.listdir(BUNDLED_VAD)) == before


@pytest.mark.parametrize(
    "args,named",
    [
        (["--output-dir", "/dev/null/x"], "/dev/null/x"),
        (["--opset-version", "1"], "opset_version=1"),
        (["--opset-version", "99"], "opset_version=99"),
        (["--device", "bogus"], "device='bogus'"),
    ],
)
def test_export_command_user_errors_are_one_line(tmp_path, capsys, args, named):
    out = tmp_path / "out"
    if "--output-dir" not in args:
        args = [*args, "--output-dir", str(out)]
    assert export_main(["--model", str(MODELS / "ct_punc_tiny"), *args]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1 and named in captured.err
    assert "Traceback" not in captured.err and not out.exists()


@pytest.mark.parametrize("flag", [{"quantize": "no"}, {"quantize": 1}, {"fp16": "false"}])
def test_export_flags_take_booleans_only(tmp_path, flag):
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=f"{next(iter(flag))}=.*True or False"):
        auto("ct_punc_tiny").export(type="onnx", output_dir=str(out), **flag)
    assert not out.exists()


# ---- exported models (funasr_onnx) ----


@pytest.fixture()
def exported_punc(export_root) -> Path:
    return exported(export_root, "ct_punc_tiny")


@pytest.mark.parametrize("graph,quantize", [("model.onnx", False), ("model_quant.onnx", True)])
def test_corrupt_graph_is_named(exported_punc, tmp_path, graph, quantize):
    folder = tmp_path / "punc"
    shutil.copytree(exported_punc, folder)
    (folder / graph).write_bytes((folder / graph).read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=f"cannot load the graph {folder / graph}.*export the model again"):
        funasr_onnx.AutoModel(model=str(folder), quantize=quantize).generate(input="跨境河流是养育沿岸人民的生命之源")


@pytest.mark.parametrize("device", ["bogus", "cuda:x", "mps", "gpu"])
def test_onnx_device_is_checked(exported_punc, device):
    with pytest.raises(OptionError, match="device=.*'cpu', 'cuda' or 'cuda:N'"):
        funasr_onnx.AutoModel(model=str(exported_punc), device=device)


def test_unsigned_pcm_is_centred():
    pcm = sf.read(WAV, dtype="int16")[0][:8000]
    unsigned = (pcm.astype(np.int32) + 32768).astype(np.uint16)
    np.testing.assert_allclose(decode_source(Source("u", unsigned)), decode_source(Source("s", pcm)), atol=1e-7)


def test_stereo_integer_pcm_is_scaled_before_its_channels_are_averaged():
    pcm = sf.read(WAV, dtype="int16")[0][:8000]
    mono = decode_source(Source("m", pcm))
    for stereo in (np.stack([pcm, pcm], axis=1), np.stack([pcm, pcm]), torch.from_numpy(np.stack([pcm, pcm], axis=1))):
        np.testing.assert_array_equal(decode_source(Source("s", stereo)), mono)  # not 32768 times louder


def test_64_bit_integer_arrays_are_read_as_the_pcm_their_values_fit():
    pcm = sf.read(WAV, dtype="int16")[0][:8000]
    np.testing.assert_array_equal(decode_source(Source("a", pcm.astype(np.int64))), decode_source(Source("b", pcm)))
    np.testing.assert_array_equal(decode_source(Source("a", torch.from_numpy(pcm.astype(np.int64)))), decode_source(Source("b", pcm)))
    wide = pcm.astype(np.int32) * 65536  # 32-bit PCM
    np.testing.assert_array_equal(decode_source(Source("a", wide.astype(np.int64))), decode_source(Source("b", wide)))
    assert np.abs(decode_source(Source("a", pcm.astype(np.int64)))).max() > 1e-3  # not silence (it was: divided by 2**63)
    with pytest.raises(AudioError, match="int64 array with values from .* is beyond 32-bit PCM"):
        decode_source(Source("big", pcm.astype(np.int64) << 40))


@pytest.mark.parametrize("peak", [1e30, -3e38])
def test_samples_far_beyond_any_pcm_scale_are_refused(peak):
    samples = read_wave("example.wav")[:16000].copy()
    samples[100] = peak
    with pytest.raises(AudioError, match="peak"):
        auto("paraformer_tiny").generate(samples)
