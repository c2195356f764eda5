"""CT-Transformer punctuation: text rules, parity with the reference, released layouts."""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
import torch
import yaml

from conftest import CHECKPOINTS, PARITY, norm_text, parity_cases
from funasr import AutoModel, registry
from funasr.models.ct_transformer import text as rules
from funasr.options import PuncOptions
from funasr.tasks.punc import PuncTask, TextItem

PUNC_LIST = ["<unk>", "_", "，", "。", "？", "、"]
UNK, NONE, COMMA, PERIOD, QUESTION, PAUSE = range(6)


@lru_cache(maxsize=None)
def _auto(model_dir: str) -> AutoModel:
    return AutoModel(model=str(PARITY / model_dir), device="cpu")


def _task(model_dir: str) -> PuncTask:
    task = _auto(model_dir).task
    assert isinstance(task, PuncTask)
    return task


def _labeller(labels: dict[int, int]):
    """A stand-in network for the windowing rules: word ids are positions, labels by position."""
    return lambda ids: np.array([labels.get(int(i), NONE) for i in ids])


def _run(words: list[str], labels: dict[int, int], split_size: int = 20) -> list[rules.Window]:
    return rules.punctuate_words(words, list(range(len(words))), _labeller(labels), PUNC_LIST, split_size)


# ---- parity with the reference -------------------------------------------------------------


@pytest.mark.parametrize("case", parity_cases("punc/"), ids=lambda c: c["id"])
def test_parity(case):
    (expected,) = case["expected"]
    (got,) = _auto(case["init"]["model"]).generate(case["input"], **case["generate"])
    assert got["key"].startswith("rand_key_")
    assert norm_text(got["text"]) == norm_text(expected["text"])
    assert got["punc_array"] == expected["punc_array"]


def test_jieba_model_labels_every_character():
    task = _task("models/ct_punc_jieba_tiny")
    text = "今天天气不错 hello world 我们去学习"
    (got,) = task([TextItem("a", text)])
    assert len(got["punc_array"]) == len(rules.split_words(text))  # characters and English words
    assert all(isinstance(p, int) for p in got["punc_array"])


@pytest.mark.parametrize("text", ["", "   ", "\u3000\n"])
def test_empty_text(text):
    (got,) = _task("models/ct_punc_tiny")([TextItem("e", text)])
    assert got == {"key": "e", "text": "", "punc_array": []}


def test_split_size_changes_windows_not_word_count():
    task = _task("models/ct_punc_tiny")
    text = "今天天气不错我们去学习" * 5
    for size in (3, 7, 200):
        (got,) = task([TextItem("s", text)], PuncOptions(split_size=size))
        assert len(got["punc_array"]) == 55
        assert got["punc_array"][-1] == PERIOD


# ---- released layouts ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ct_punc", "ct_punc_c"])
def test_released_layout(name):
    listing = [line.split("\t") for line in (CHECKPOINTS / f"{name}.tsv").read_text().splitlines()]
    cfg = yaml.safe_load((CHECKPOINTS / f"{name}.config.yaml").read_text(encoding="utf-8"))
    vocab = json.loads(listing[0][1])[0]
    with torch.device("meta"):
        model = registry.lookup(cfg["model"]).from_config(cfg, input_size=None, vocab_size=vocab)
    got = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    assert got == [(k, json.loads(shape)) for k, shape, _ in listing]
    assert registry.family_of(cfg["model"]).task == "funasr.tasks.punc:PuncTask"


def test_from_config_needs_vocab():
    cfg = yaml.safe_load((CHECKPOINTS / "ct_punc_c.config.yaml").read_text(encoding="utf-8"))
    with pytest.raises(Exception, match="token list"):
        registry.lookup("CTTransformer").from_config(cfg, input_size=None, vocab_size=None)


# ---- split_words ---------------------------------------------------------------------------


def test_split_words_characters_and_ascii_runs():
    assert rules.split_words("一丁hello world") == ["一", "丁", "hello", "world"]
    assert rules.split_words(" abc123你好\u3000it's  ok\n") == ["abc123", "你", "好", "it's", "ok"]
    assert rules.split_words("  ") == []


def test_split_words_jieba_keeps_english_and_cuts_chinese():
    jieba = rules.load_jieba(PARITY / "models" / "ct_punc_jieba_tiny" / "jieba_usr_dict")
    assert rules.split_words("fun asr model 你好 朋友 打电话", jieba) == ["fun", "asr", "model", "你好", "朋友", "打电话"]
    # pieces that are not pure English are glued before jieba cuts them
    assert rules.split_words("hello 音乐 时间 abc123 world", jieba) == ["hello", "音乐", "时间", "abc123", "world"]
    assert rules.split_words("", jieba) == []


# ---- windows -------------------------------------------------------------------------------


def test_window_emits_up_to_last_sentence_end_and_carries_the_rest():
    words = [f"w{i}" for i in range(45)]
    windows = _run(words, {5: PERIOD, 10: QUESTION})
    assert [len(w.words) for w in windows] == [11, 0, 34]
    assert windows[0].words == words[:11] and windows[0].puncs[10] == QUESTION
    # the carried words are fed again at the front of the next window
    assert windows[2].words == words[11:]


def test_sentence_end_in_the_last_or_first_two_positions_does_not_cut():
    words = [f"w{i}" for i in range(25)]
    assert [len(w.words) for w in _run(words, {19: PERIOD})] == [0, 25]
    assert [len(w.words) for w in _run(words, {1: PERIOD})] == [0, 25]
    assert [len(w.words) for w in _run(words, {2: PERIOD})] == [3, 22]


def test_long_window_is_cut_at_its_last_comma():
    words = [f"w{i}" for i in range(250)]
    windows = _run(words, {50: COMMA, 120: COMMA})
    sizes = [len(w.words) for w in windows]
    # windows of 20, 40, ... 200 words are carried; the 220-word window is cut after word 120,
    # the 119 words after it are carried once more and emitted with the last ten
    assert sizes == [0] * 10 + [121, 0, 129]
    assert windows[10].puncs[120] == PERIOD
    assert windows[10].puncs[50] == COMMA


def test_long_window_without_comma_keeps_carrying():
    words = [f"w{i}" for i in range(250)]
    assert [len(w.words) for w in _run(words, {})] == [0] * 12 + [250]


def test_split_size_one_emits_the_whole_text_at_the_end():
    words = ["a", "b", "c"]
    assert [len(w.words) for w in _run(words, {0: PERIOD}, split_size=1)] == [0, 0, 3]


# ---- assembly ------------------------------------------------------------------------------


def _assemble(words: list[str], puncs: list[int]) -> tuple[str, list[int]]:
    return rules.assemble([rules.Window(words, puncs)], PUNC_LIST)


def test_assemble_english_spacing_and_capitals():
    words = rules.split_words("hello world 一丁 the ok 一丁 七")
    text, punc = _assemble(words, [NONE, COMMA, NONE, NONE, PERIOD, NONE, NONE, NONE, NONE])
    assert text == " Hello world,一丁the. Ok一丁七。"
    assert punc == [NONE, COMMA, NONE, NONE, PERIOD, NONE, NONE, NONE, PERIOD]
    assert _assemble(rules.split_words("一 丁 七 hello"), [NONE] * 4)[0] == "一丁七hello."
    # capitalize() lower-cases the rest of the word
    assert _assemble(["iPhone", "NASA"], [QUESTION, NONE])[0] == " Iphone? Nasa."


def test_assemble_end_rules():
    assert _assemble(["好", "的"], [NONE, COMMA]) == ("好的。", [NONE, PERIOD])
    assert _assemble(["好", "的"], [NONE, PAUSE]) == ("好的。", [NONE, PERIOD])
    assert _assemble(["好", "ok"], [NONE, COMMA]) == ("好ok.", [NONE, PERIOD])
    assert _assemble(["好", "吗"], [NONE, QUESTION]) == ("好吗？", [NONE, QUESTION])
    assert _assemble(["is", "it"], [NONE, QUESTION]) == (" Is it?", [NONE, QUESTION])
    assert _assemble(["ok", "的"], [PERIOD, NONE]) == (" Ok.的。", [PERIOD, PERIOD])


def test_assemble_keeps_unk_class_literally():
    assert _assemble(["你", "好", "呀"], [UNK, NONE, NONE]) == ("你<unk>好呀。", [UNK, NONE, PERIOD])
    assert _assemble(["你", "ok"], [NONE, UNK]) == ("你ok<unk>.", [NONE, PERIOD])
    assert _assemble(["ok", "你"], [PAUSE, NONE])[0] == " Ok、你。"


def test_assemble_spaces_restart_at_each_window():
    windows = [rules.Window(["好", "ok"], [NONE, PERIOD]), rules.Window(["yes", "好"], [NONE, NONE])]
    assert rules.assemble(windows, PUNC_LIST) == ("好ok. Yes好。", [NONE, PERIOD, NONE, PERIOD])


def test_expand_to_chars():
    words = ["今天天气", "hello", "去", "学习"]
    assert rules.expand_to_chars(words, [PERIOD, COMMA, NONE, PERIOD]) == [1, 1, 1, PERIOD, COMMA, NONE, 1, PERIOD]
