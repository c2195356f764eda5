"""The pipeline's pure parts: merging, batching, text joining and sentences."""
from funasr.pipeline import merge_segments
from funasr.planner import pack_batches
from funasr.sentences import join_vad_texts, punctuate_segments, sentences_from_punctuation, sentences_from_segments


def test_merge_vad_includes_gaps_and_starts_at_zero():
    segs = [[1000, 3000], [4000, 9000], [12000, 14000], [30000, 31000]]
    assert merge_segments(segs, 10000) == [[0, 9000], [9000, 14000], [14000, 30000], [30000, 31000]]
    assert merge_segments([], 15000) == []


def test_batches_respect_budget_and_threshold():
    durations = [5000, 1000, 3000, 70000, 2000]
    batches = list(pack_batches(durations, budget_ms=9000, threshold_ms=60000))
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3, 4]
    for b in batches:
        longest = max(durations[i] for i in b)
        assert longest * len(b) <= 9000 or len(b) == 1
    assert [3] in batches  # past the threshold: alone
    assert batches[0] == [1, 4, 2]  # shortest first


def test_join_vad_texts():
    assert join_vad_texts(["欢 迎", "大 家", "", "hello world", "<|zh|>你 好"]) == "欢 迎大 家 hello world 你 好"
    assert join_vad_texts(["a", "b"]) == "a b"


def test_sentences_follow_punctuation_and_keep_alignment():
    units = ["欢", "迎", "hello", "world", "大", "家"]
    stamps = [[0, 100], [100, 200], [200, 300], [300, 400], [400, 500], [500, 600]]
    punc = [1, 2, 1, 4, 1, 3]
    out = sentences_from_punctuation(punc, stamps, units)
    assert [s["text"] for s in out] == ["欢迎，", " hello world？", "大家。"]
    assert [(s["start"], s["end"]) for s in out] == [(0, 200), (200, 400), (400, 600)]
    assert sum(len(s["timestamp"]) for s in out) == len(units)


def test_words_after_the_last_mark_are_kept():
    out = sentences_from_punctuation([1, 3, 1], [[0, 1], [1, 2], [2, 3]], ["a", "b", "c"], return_raw_text=True)
    assert [s["raw_text"] for s in out] == ["ab", "c"]


def test_segment_fallback():
    out = sentences_from_segments([[0, 1000], [2000, 3000]], ["你 好", ""])
    assert out == [{"text": "你 好", "sentence": "你 好", "start": 0, "end": 1000, "timestamp": []}]


def test_segments_take_their_marks_from_the_punctuated_join():
    # the punctuation model reads the segments joined; each segment gets back its words and the marks after them
    texts = ["<|zh|>你好 世界", "", "hello world", "再 见"]
    punctuated = "你好世界，Hello world. 再见。"
    assert punctuate_segments(texts, punctuated) == ["你好世界，", "", "Hello world.", "再见。"]
    assert punctuate_segments(["你好", "世界"], "你好，世界") == ["你好，", "世界"]
    assert punctuate_segments(["你好"], "你们好。") is None  # a changed word: no guessing
    assert punctuate_segments(["你好"], "你好。多余") is None  # text left over

