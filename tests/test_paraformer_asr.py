"""Offline recognition with the Paraformer family: parity with the reference, batching, timestamps, hotwords."""
from __future__ import annotations

import http.server
import shutil
import threading
from functools import lru_cache

import pytest
import torch

from conftest import AUDIO, PARITY, TOLERANCE_MS, norm_text, parity_cases, read_wave
from funasr.audio import AudioItem
from funasr.auto_model import AutoModel
import funasr.tasks.asr as asr_task
from funasr.errors import HotwordError
from funasr.options import ASROptions


@lru_cache(maxsize=None)
def _auto(model: str) -> AutoModel:
    return AutoModel(model=str(PARITY / model), device="cpu", disable_pbar=True)


def _task(model: str):
    return _auto(model).task


def _assert_same(got: dict, expected: dict) -> None:
    assert got["key"] == expected["key"]
    assert norm_text(got["text"]) == norm_text(expected["text"])
    assert ("timestamp" in got) == ("timestamp" in expected)
    if "timestamp" in expected:
        assert len(got["timestamp"]) == len(expected["timestamp"])
        for (s, e), (rs, re_) in zip(got["timestamp"], expected["timestamp"]):
            assert abs(s - rs) <= TOLERANCE_MS and abs(e - re_) <= TOLERANCE_MS


@pytest.mark.parametrize("case", parity_cases(("asr/", "hotword/")), ids=lambda c: c["id"])
def test_parity(case):
    inputs = case["input"]
    inputs = [str(PARITY / p) for p in inputs] if isinstance(inputs, list) else str(PARITY / inputs)
    got = _auto(case["init"]["model"]).generate(inputs, **case["generate"])
    assert len(got) == len(case["expected"])
    for g, e in zip(got, case["expected"]):
        _assert_same(g, e)


@pytest.mark.parametrize("model", ["paraformer_tiny", "bicif_paraformer_tiny", "seaco_paraformer_tiny", "contextual_paraformer_tiny"])
def test_batched_equals_one_at_a_time(model):
    task = _task(f"models/{model}")
    items = [AudioItem("sample", read_wave("sample.wav")), AudioItem("example", read_wave("example.wav")), AudioItem("short", read_wave("example.wav")[:20000])]
    alone = [task([item])[0] for item in items]
    assert task(items) == alone
    assert task(items[:2]) + task(items[2:]) == alone


def test_hotwords_batched_equal_one_at_a_time_with_filtering():
    """More than 50 hotwords: the attention filter picks per utterance, so batch-mates do not matter."""
    task = _task("models/seaco_paraformer_tiny")
    tokens = task.tokenizer.token_list
    hotword = " ".join(tokens[3 + i] + tokens[40 + i] for i in range(60))
    items = [AudioItem("sample", read_wave("sample.wav")), AudioItem("example", read_wave("example.wav"))]
    alone = [task([item], ASROptions(hotword=hotword))[0] for item in items]
    assert task(items, ASROptions(hotword=hotword)) == alone
    assert task(items)[0]["text"] != alone[0]["text"] or task(items)[1]["text"] != alone[1]["text"]


def test_plain_paraformer_timestamps_on_request():
    task = _task("models/paraformer_tiny")
    item = [AudioItem("example", read_wave("example.wav"))]
    plain = task(item)[0]
    (timed,) = task(item, ASROptions(timestamps=True))
    assert set(plain) == {"key", "text"}
    assert timed["text"].replace(" ", "") == plain["text"]
    assert len(timed["timestamp"]) == len(timed["text"].split())
    starts = [s for s, _ in timed["timestamp"]]
    assert starts == sorted(starts) and all(s < e for s, e in timed["timestamp"])
    assert task(item, ASROptions(timestamps=True)) == [timed]


def test_zero_token_utterance_keeps_its_key_and_the_others():
    """A too-short segment gives empty text (with its key and timestamp []) and never empties the batch."""
    task = _task("models/seaco_paraformer_tiny")
    short = read_wave("example.wav")[:900]
    with torch.inference_mode():
        feats, lens = task.frontend([short])
        model = task.net.module
        enc, enc_lens = model.encode(torch.from_numpy(feats), torch.from_numpy(lens))
        assert model.predict(enc, enc_lens).token_num.tolist() == [0]
    (alone,) = task([AudioItem("short", short)], ASROptions(hotword="今天 朋友"))
    assert alone == {"key": "short", "text": "", "timestamp": []}
    full = task([AudioItem("example", read_wave("example.wav"))], ASROptions(hotword="今天 朋友"))[0]
    both = task([AudioItem("short", short), AudioItem("example", read_wave("example.wav"))], ASROptions(hotword="今天 朋友"))
    assert both == [alone, full]


def test_hotword_file_equals_hotword_string(tmp_path):
    task = _task("models/contextual_paraformer_tiny")
    item = [AudioItem("example", read_wave("example.wav"))]
    path = tmp_path / "hot.txt"
    path.write_text("今天\n\n朋友\n电话\n", encoding="utf-8")
    assert task(item, ASROptions(hotword=str(path))) == task(item, ASROptions(hotword="今天 朋友 电话"))


def test_hotword_url(tmp_path, monkeypatch):
    (tmp_path / "hot.txt").write_text("今天\n朋友\n电话\n", encoding="utf-8")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        task = _task("models/seaco_paraformer_tiny")
        item = [AudioItem("example", read_wave("example.wav"))]
        url = f"http://127.0.0.1:{server.server_address[1]}/hot.txt"
        assert task(item, ASROptions(hotword=url)) == task(item, ASROptions(hotword="今天 朋友 电话"))
        # the list at the URL changes: read again once the cached copy is URL_HOTWORD_TTL_S old
        (tmp_path / "hot.txt").write_text("朋友\n", encoding="utf-8")
        assert task(item, ASROptions(hotword=url)) == task(item, ASROptions(hotword="今天 朋友 电话"))  # cached
        monkeypatch.setattr(asr_task, "URL_HOTWORD_TTL_S", 1e-6)
        assert task(item, ASROptions(hotword=url)) == task(item, ASROptions(hotword="朋友"))
        assert task(item, ASROptions(hotword="朋友")) != task(item, ASROptions(hotword="今天 朋友 电话"))
        with pytest.raises(HotwordError, match="missing.txt"):
            task(item, ASROptions(hotword=url.replace("hot.txt", "missing.txt")))
    finally:
        server.shutdown()


def test_missing_hotword_file_is_a_clear_error(tmp_path):
    task = _task("models/seaco_paraformer_tiny")
    with pytest.raises(HotwordError, match="does not exist"):
        task([AudioItem("example", read_wave("example.wav"))], ASROptions(hotword=str(tmp_path / "nope.txt")))


@pytest.mark.parametrize("model", ["seaco_paraformer_tiny", "contextual_paraformer_tiny"])
def test_empty_hotword_list_is_a_no_op(model, tmp_path):
    task = _task(f"models/{model}")
    item = [AudioItem("example", read_wave("example.wav"))]
    (tmp_path / "empty.txt").write_text("\n  \n", encoding="utf-8")
    plain = task(item)
    assert task(item, ASROptions(hotword="")) == plain
    assert task(item, ASROptions(hotword="   ")) == plain
    assert task(item, ASROptions(hotword=str(tmp_path / "empty.txt"))) == plain


def test_clas_scale_changes_contextual_biasing():
    task = _task("models/contextual_paraformer_tiny")
    item = [AudioItem("example", read_wave("example.wav"))]
    default = task(item, ASROptions(hotword="今天 朋友 电话"))
    assert task(item, ASROptions(hotword="今天 朋友 电话", clas_scale=1.0)) == default
    assert task(item, ASROptions(hotword="今天 朋友 电话", clas_scale=40.0)) != default


def test_hotwords_are_encoded_once_per_string():
    task = _task("models/seaco_paraformer_tiny")
    first = task.hotword_bias("今天 朋友 电话")
    assert task.hotword_bias("今天 朋友 电话") is first
    assert task.hotword_bias("今天 朋友") is not first


def test_deterministic_on_cpu():
    task = _task("models/bicif_paraformer_tiny")
    item = [AudioItem("sample", read_wave("sample.wav"))]
    assert task(item) == task(item)


def test_seg_dict_of_the_model_tokenises_hotwords(tmp_path):
    """A model directory with ``seg_dict`` splits hotwords into its pieces (here: characters)."""
    model_dir = tmp_path / "seaco"
    shutil.copytree(PARITY / "models" / "seaco_paraformer_tiny", model_dir)
    (model_dir / "seg_dict").write_text("今天 今 天\n朋友 朋 友\n", encoding="utf-8")
    task = AutoModel(model=str(model_dir), device="cpu", disable_pbar=True).task
    tok = task.tokenizer
    assert tok.seg_dict is not None
    by_pieces = task.hotword_bias("今天 朋友")
    assert torch.equal(by_pieces, task.net.encode_hotwords([tok.tokens2ids(["今", "天"]), tok.tokens2ids(["朋", "友"]), [1]]))
    item = [AudioItem("example", read_wave("example.wav"))]
    assert task(item, ASROptions(hotword="今天 朋友")) != _task("models/seaco_paraformer_tiny")(item, ASROptions(hotword="今天 朋友"))


def test_audio_shorter_than_a_frame_gives_empty_text():
    task = _task("models/bicif_paraformer_tiny")
    tiny = read_wave("example.wav")[8000:8100]
    full = task([AudioItem("example", read_wave("example.wav"))])[0]
    got = task([AudioItem("tiny", tiny), AudioItem("example", read_wave("example.wav"))])
    assert got == [{"key": "tiny", "text": "", "timestamp": []}, full]


@pytest.mark.parametrize("model", ["paraformer_tiny", "bicif_paraformer_tiny", "seaco_paraformer_tiny", "contextual_paraformer_tiny"])
def test_half_precision_gives_the_float32_results(model):
    path = str(PARITY / "models" / model)
    want = _auto(f"models/{model}").generate(str(AUDIO / "example.wav"), hotword="今天")[0]
    half = AutoModel(model=path, fp16=True, disable_pbar=True)
    assert next(half.task.net.module.encoder.parameters()).dtype == torch.float16
    assert next(half.task.net.module.predictor.parameters()).dtype == torch.float32  # the CIF's running sum
    got = half.generate(str(AUDIO / "example.wav"), hotword="今天")[0]
    assert got["text"] == want["text"] and got.get("timestamp") == want.get("timestamp")
    bf16 = AutoModel(model=path, bf16=True, disable_pbar=True).generate(str(AUDIO / "example.wav"), hotword="今天")[0]
    assert len(bf16["text"].replace(" ", "")) == len(want["text"].replace(" ", ""))  # bf16 may change a token, not the count
