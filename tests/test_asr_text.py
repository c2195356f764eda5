"""Torch-free ASR text rules: token assembly, CIF timestamps, hotword lists."""
from __future__ import annotations

import numpy as np
import pytest

from funasr.errors import HotwordError
from funasr.hotword import hotword_ids, read_hotwords, seg_tokenize
from funasr.models.paraformer.cif import integrate_and_fire, ts_prediction_lfr6_standard
from funasr.postprocess import sentence_postprocess
from funasr.tokenizer import CharTokenizer

STAMPS = [[0, 1], [1, 2], [2, 3], [3, 4], [4, 5]]


@pytest.mark.parametrize(
    "tokens, text, timed_text, timed_stamps",
    [
        (["欢", "迎", "大", "家"], "欢迎大家", "欢 迎 大 家", STAMPS[:4]),
        (["hel@@", "lo", "world"], "hello world", "hello world", [[0, 2], [2, 3]]),
        (["你", "好", "hello", "世", "界"], "你好hello世界", "你 好 hello 世 界", STAMPS),
        (["a", "b", "c", "好"], "ABC好", "ABC 好", [[0, 3], [3, 4]]),
        (["<s>", "好", "</s>"], "好", "好", [[0, 1]]),
        ([], "", "", []),
    ],
)
def test_sentence_postprocess(tokens, text, timed_text, timed_stamps):
    assert sentence_postprocess(tokens)[0] == text
    got_text, got_stamps, _ = sentence_postprocess(tokens, STAMPS[: len(tokens)])
    assert (got_text, got_stamps) == (timed_text, timed_stamps)


def test_dropped_unk_shifts_later_stamps_as_the_reference_does():
    text, stamps, units = sentence_postprocess(["<unk>", "1", "2", "好"], STAMPS[:4])
    assert (text, units) == ("1 2 好", ["1", "2", "好"])
    assert stamps == STAMPS[:3]


def test_integrate_and_fire_subtracts_after_each_fire():
    fires = integrate_and_fire(np.array([0.6, 0.6, 0.6, 0.3], dtype=np.float32), 1.0, 1.0)
    np.testing.assert_allclose(fires, [0.6, 1.2, 0.8, 1.1], rtol=1e-6)


def _spikes(length: int, at: list[int]) -> np.ndarray:
    alphas = np.zeros(length, dtype=np.float32)
    alphas[at] = 1.0
    return alphas


def test_timestamps_renormalise_and_shift():
    """Fires at 10/15/20 of 30 steps (20 ms): shift -1.5, leading silence, tail split at the midpoint."""
    alphas = _spikes(30, [10, 15, 20])
    before = alphas.copy()
    assert ts_prediction_lfr6_standard(alphas, np.zeros(30, np.float32), ["a", "b"]) == [[170, 270], [270, 485]]
    np.testing.assert_array_equal(alphas, before)


def test_timestamps_cut_long_tokens():
    alphas = _spikes(60, [10, 40, 44])
    peaks = np.zeros(60, np.float32)
    assert ts_prediction_lfr6_standard(alphas, peaks, ["a", "b"]) == [[170, 410], [770, 1025]]
    assert ts_prediction_lfr6_standard(alphas, peaks, ["a", "b"], upsample_rate=1) == [[510, 1230], [2310, 3074]]


def test_timestamps_use_given_peaks_when_they_fire_once_per_token_plus_one():
    peaks = _spikes(30, [3, 9, 27])
    assert ts_prediction_lfr6_standard(np.ones(30, np.float32), peaks, ["a", "b", "</s>"]) == [[30, 150], [150, 390]]
    assert ts_prediction_lfr6_standard(np.ones(30, np.float32), peaks, []) == []


def test_read_hotwords_forms(tmp_path):
    assert read_hotwords(None) is None
    assert read_hotwords(" 达摩院  魔搭\n") == ["达摩院", "魔搭"]
    assert read_hotwords("") == []
    path = tmp_path / "hot.txt"
    path.write_text("达摩院\n\nfun asr\n", encoding="utf-8")
    assert read_hotwords(str(path)) == ["达摩院", "fun asr"]
    with pytest.raises(HotwordError, match="does not exist"):
        read_hotwords(str(tmp_path / "missing.txt"))


def test_seg_tokenize():
    seg_dict = {"hello": ["hel@@", "lo"], "你": ["你"], "12": ["1@@", "2"]}
    assert seg_tokenize(["Hello", "你好", "x", "12"], seg_dict) == ["hel@@", "lo", "你", "<unk>", "<unk>", "1@@", "2"]


def test_hotword_ids_with_and_without_seg_dict(tmp_path):
    tokens = ["<blank>", "<s>", "</s>", "hel@@", "lo", "你", "好", "<unk>"]
    plain = CharTokenizer(tokens)
    assert hotword_ids(["你好", "hello 你"], plain) == [[7], [7, 5], [1]]
    (tmp_path / "seg_dict").write_text("hello hel@@ lo\n你 你\n好 好\n", encoding="utf-8")
    seg = CharTokenizer(tokens, seg_dict=str(tmp_path / "seg_dict"))
    assert hotword_ids(["你好", "HELLO 你"], seg) == [[5, 6], [3, 4, 5], [1]]
