"""Every input kind the reference accepts, resampling, channel mixing and audio errors."""
import json

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from conftest import AUDIO, read_wave
from funasr.audio import collect_sources, decode_source, load_inputs, mix_to_mono
from funasr.errors import AudioError

WAV = AUDIO / "example.wav"


@pytest.fixture(scope="module")
def wave():
    return read_wave("example.wav")


def test_path_gives_stem_key_and_16k_mono(wave):
    (item,) = load_inputs(str(WAV))
    assert item.key == "example" and item.error is None
    np.testing.assert_array_equal(item.waveform, wave)


@pytest.mark.parametrize("fmt,ext", [("FLAC", "flac"), ("OGG", "ogg"), ("MP3", "mp3"), ("WAV", "wav")])
def test_compressed_files_and_bytes(tmp_path, wave, fmt, ext):
    path = tmp_path / f"clip.{ext}"
    sf.write(path, wave, 16000, format=fmt)
    (from_file,) = load_inputs(str(path))
    (from_bytes,) = load_inputs(path.read_bytes())
    assert from_file.key == "clip"
    assert abs(len(from_file.waveform) - len(wave)) < 2000
    np.testing.assert_array_equal(from_file.waveform, from_bytes.waveform)
    if fmt in ("FLAC", "WAV"):
        np.testing.assert_allclose(from_file.waveform, wave, atol=1e-4)
    else:  # lossy codecs: same loudness
        ratio = np.sqrt(np.mean(from_file.waveform**2) / np.mean(wave**2))
        assert 0.8 < ratio < 1.2


def test_raw_pcm_bytes(wave):
    pcm = np.round(wave * 32767).astype("<i2").tobytes()
    (item,) = load_inputs(pcm)
    np.testing.assert_allclose(item.waveform, wave, atol=1e-4)
    assert item.key.startswith("rand_key_") and len(item.key) == len("rand_key_") + 13


def test_numpy_and_torch_inputs(wave):
    (a,) = load_inputs(wave)
    (t,) = load_inputs(torch.from_numpy(wave))
    np.testing.assert_array_equal(a.waveform, t.waveform)
    assert a.key == t.key  # keys are deterministic: derived from the content


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_resampling_to_16k(wave, rate):
    other = soxr.resample(wave, 16000, rate)
    (item,) = load_inputs(other, fs=rate)
    assert abs(len(item.waveform) - len(wave)) <= 2
    n = min(len(wave), len(item.waveform))
    # band-limited content survives the round trip
    corr = np.corrcoef(item.waveform[:n], wave[:n])[0, 1]
    assert corr > (0.9 if rate == 8000 else 0.99)


def test_resampling_files(tmp_path, wave):
    path = tmp_path / "hi.wav"
    sf.write(path, soxr.resample(wave, 16000, 44100), 44100)
    (item,) = load_inputs(str(path), fs=8000)  # a file's own rate wins over fs=
    assert abs(len(item.waveform) - len(wave)) <= 2


@pytest.mark.parametrize("layout", ["channels_last", "channels_first"])
def test_stereo_is_mixed_on_the_channel_axis(wave, layout):
    left, right = wave, np.zeros_like(wave)
    stereo = np.stack([left, right], axis=1 if layout == "channels_last" else 0)
    (item,) = load_inputs(stereo)
    np.testing.assert_allclose(item.waveform, wave / 2, atol=1e-7)


def test_stereo_file(tmp_path, wave):
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([wave, -wave * 0 + wave], axis=1), 16000)
    (item,) = load_inputs(str(path))
    np.testing.assert_allclose(item.waveform, wave, atol=1e-4)


def test_list_and_list_files(tmp_path):
    sample = AUDIO / "sample.wav"
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt1 {WAV}\nutt2 {sample}\n")
    assert [i.key for i in load_inputs(str(scp))] == ["utt1", "utt2"]
    txt = tmp_path / "list.txt"
    txt.write_text(f"{WAV}\n{sample}\n")
    assert [i.key for i in load_inputs(str(txt))] == ["example", "sample"]
    jsonl = tmp_path / "list.jsonl"
    jsonl.write_text(json.dumps({"key": "a", "source": str(WAV)}) + "\n" + json.dumps({"source": str(sample)}) + "\n")
    assert [i.key for i in load_inputs(str(jsonl))] == ["a", "sample"]
    assert [i.key for i in load_inputs([str(WAV), str(sample)])] == ["example", "sample"]


def test_repeated_keys_stay_distinct(wave):
    assert [i.key for i in load_inputs([str(WAV), str(WAV)])] == ["example", "example_1"]


def test_missing_file_is_named():
    (item,) = load_inputs("/no/such/file.wav")
    assert isinstance(item.error, AudioError) and "/no/such/file.wav" in str(item.error)


def test_undecodable_file(tmp_path):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF not really a wav file at all")
    (item,) = load_inputs(str(bad))
    assert isinstance(item.error, AudioError) and "bad.wav" in str(item.error)


def test_empty_audio(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, dtype=np.float32), 16000)
    (item,) = load_inputs(str(empty))
    assert isinstance(item.error, AudioError) and "no samples" in str(item.error)


def test_bad_item_keeps_the_others():
    items = load_inputs(["/missing.wav", str(WAV)])
    assert items[0].error is not None and items[1].waveform is not None


def test_unsupported_type_is_an_error():
    with pytest.raises(AudioError, match="cannot read an input of type"):
        collect_sources(3.5)


def test_url_that_cannot_be_reached():
    from funasr.audio import Source

    with pytest.raises(AudioError, match="cannot download http://127.0.0.1:9/x.wav"):
        decode_source(Source("x", "http://127.0.0.1:9/x.wav"))


def test_url_download(tmp_path, wave):
    import http.server
    import threading
    from functools import partial

    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(AUDIO))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        (item,) = load_inputs(f"http://127.0.0.1:{server.server_port}/example.wav")
    finally:
        server.shutdown()
    assert item.key == "example"
    np.testing.assert_array_equal(item.waveform, wave)


def test_mix_rejects_3d():
    with pytest.raises(AudioError):
        mix_to_mono(np.zeros((2, 2, 2)), "x")
