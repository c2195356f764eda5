"""N-gram LMs: funasr-train-lm's Kneser-Ney estimate, the LM beam search, and ``lm_file=`` on Paraformer models."""
from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from funasr.bin.train_lm import main as train_lm
from funasr.errors import OptionError
from funasr.lm import NgramLM, lm_words
from funasr.search import lm_beam_search
from funasr.train.ngram import train_arpa

SENTENCES = ["我们明天再去北京", "明天再去看看", "他在北京工作", "我在家里", "我们再去一次吧", "在家里看书"]


def _lm(tmp_path, sentences=SENTENCES, order=3, prune=()) -> NgramLM:
    return NgramLM(train_arpa([list(s) for s in sentences], order, tmp_path / f"lm{order}.arpa", prune))


@pytest.mark.parametrize("order, prune", [(2, ()), (3, ()), (4, ()), (3, (0, 1)), (4, (1, 1, 1)), (4, (0, 0, 2))])
def test_the_kneser_ney_lm_sums_to_one_in_every_context(tmp_path, order, prune):
    lm = _lm(tmp_path, order=order, prune=prune)
    vocab = sorted({c for s in SENTENCES for c in s}) + ["</s>", "<unk>"]
    for history in ["", "我们", "明天再", "京", "再去北京", "火"]:  # seen, long, unseen (<unk>) histories
        state = lm.begin()
        for w in history:
            state = lm.score(state, w)[1]
        total = sum(math.exp(lm.score(state, w)[0]) for w in vocab)
        assert total == pytest.approx(1.0, abs=1e-5), (history, total)


def test_the_lm_prefers_the_seen_continuation(tmp_path):
    lm = _lm(tmp_path)
    after_ming_tian = lm.score(lm.score(lm.begin(), "明")[1], "天")[1]
    assert lm.score(after_ming_tian, "再")[0] > lm.score(after_ming_tian, "在")[0]


def test_pruning_drops_rare_ngrams(tmp_path):
    full = train_arpa([list(s) for s in SENTENCES], 4, tmp_path / "full.arpa").read_text()
    small = train_arpa([list(s) for s in SENTENCES], 4, tmp_path / "small.arpa", (1, 1, 1)).read_text()
    assert len(small) < len(full) / 2
    assert "ngram 1=" in small and small.split("ngram 1=")[1].split()[0] == full.split("ngram 1=")[1].split()[0]  # all unigrams


def test_train_lm_reads_kaldi_text_and_jsonl_and_gzips(tmp_path):
    (tmp_path / "text").write_text("a1 我们 明天 再去\na2 他在北京\n", encoding="utf-8")
    (tmp_path / "list.jsonl").write_text('{"key": "b1", "source": "x.wav", "target": "明天再去看看"}\n', encoding="utf-8")
    out = tmp_path / "lm.arpa.gz"
    assert train_lm([str(tmp_path / "text"), str(tmp_path / "list.jsonl"), "-o", str(out), "--order", "3"]) == 0
    lm = NgramLM(out)
    assert lm.order == 3
    state = lm.score(lm.begin(), "我")[1]
    assert lm.score(state, "们")[0] > math.log(0.3)  # spaces dropped: characters are the words


def test_train_lm_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "text").write_text("a1 我们\n", encoding="utf-8")
    assert train_lm([str(tmp_path / "text"), "-o", str(tmp_path / "lm.arpa"), "--order", "1"]) == 2
    assert "order=1" in capsys.readouterr().err
    assert train_lm([str(tmp_path / "text"), "--seg-dict", str(tmp_path / "nope")]) == 2
    assert "--seg-dict" in capsys.readouterr().err


def _logp(rows: list[dict[int, float]], vocab: int) -> np.ndarray:
    """(N, V) log-probabilities with the given probabilities per position and the rest spread evenly."""
    out = np.full((len(rows), vocab), 0.0)
    for i, row in enumerate(rows):
        rest = (1 - sum(row.values())) / (vocab - len(row))
        out[i] = rest
        for k, p in row.items():
            out[i, k] = p
    return np.log(out)


def test_lm_beam_search_with_weight_zero_is_greedy(tmp_path):
    rng = np.random.default_rng(0)
    tokens = ["<blank>", "<s>", "</s>"] + sorted({c for s in SENTENCES for c in s}) + ["<unk>"]
    words = lm_words(tokens, frozenset({0, 1, 2}))
    lm = _lm(tmp_path)
    for _ in range(20):
        logp = np.log(rng.dirichlet(np.ones(len(tokens)) * 0.3, size=7))
        greedy = [t for t in logp.argmax(-1).tolist() if t > 2]
        assert lm_beam_search(logp, words, lm, 0.0, 5) == greedy


def test_lm_beam_search_picks_the_homophone_the_lm_knows(tmp_path):
    tokens = ["<blank>", "<s>", "</s>"] + sorted({c for s in SENTENCES for c in s}) + ["<unk>"]
    ids = {t: i for i, t in enumerate(tokens)}
    words = lm_words(tokens, frozenset({0, 1, 2}))
    lm = _lm(tmp_path)
    # acoustically 明天在去 is a little more likely than 明天再去; the last position is </s> (emits nothing)
    logp = _logp([{ids["明"]: 0.9}, {ids["天"]: 0.9}, {ids["在"]: 0.5, ids["再"]: 0.4}, {ids["去"]: 0.9}, {2: 0.9}], len(tokens))
    assert [tokens[i] for i in lm_beam_search(logp, words, lm, 0.0, 4)] == list("明天在去")
    assert [tokens[i] for i in lm_beam_search(logp, words, lm, 0.5, 4)] == list("明天再去")
    assert [tokens[i] for i in lm_beam_search(logp, words, lm, 0.5, 1)] == list("明天在去")  # beam 1 offers the best only


class _Counted:
    """An LM that counts its score() calls."""

    def __init__(self, lm: NgramLM) -> None:
        self.lm, self.calls = lm, 0

    def begin(self):
        return self.lm.begin()

    def score(self, state, word):
        self.calls += 1
        return self.lm.score(state, word)

    def end(self, state):
        return self.lm.end(state)


def _every_expansion(logp, words, lm, weight, beam_size):
    """The LM beam search scoring every (hypothesis, offered token) pair: what the bounded search must equal."""
    beams = {(): (0.0, lm.begin())}
    for row in logp:
        grown = {}
        for tokens, (score, state) in beams.items():
            for c in np.argsort(-row, kind="stable")[:beam_size].tolist():
                if words[c] is None:
                    new, total, after = tokens, score + float(row[c]), state
                else:
                    lp, after = lm.score(state, words[c])
                    new, total = tokens + (c,), score + float(row[c]) + weight * lp
                if new not in grown or total > grown[new][0]:
                    grown[new] = (total, after)
        beams = dict(sorted(grown.items(), key=lambda kv: -kv[1][0])[:beam_size])
    return list(max(beams.items(), key=lambda kv: kv[1][0] + weight * lm.end(kv[1][1]))[0])


def test_lm_beam_search_skips_hopeless_expansions_and_finds_the_same_tokens(tmp_path):
    rng = np.random.default_rng(1)
    tokens = ["<blank>", "<s>", "</s>"] + sorted({c for s in SENTENCES for c in s}) + ["<unk>"]
    words = lm_words(tokens, frozenset({0, 1, 2}))
    lm = _lm(tmp_path)
    calls = []
    for concentration in (0.05, 0.3, 3.0):  # peaked rows (as a trained decoder's) to nearly flat ones
        for _ in range(15):
            logp = np.log(rng.dirichlet(np.ones(len(tokens)) * concentration, size=9))
            for weight, beam in ((0.3, 4), (0.6, 10), (1.5, 30)):
                counted = _Counted(lm)
                assert lm_beam_search(logp, words, counted, weight, beam) == _every_expansion(logp, words, lm, weight, beam)
                calls.append((counted.calls, beam))
    assert sum(c for c, _ in calls) < 0.5 * sum(9 * b * b for _, b in calls)


def test_an_lm_file_that_is_not_an_lm_fails_clearly(tmp_path):
    bad = tmp_path / "lm.arpa"
    bad.write_text("not an arpa file\n", encoding="utf-8")
    with pytest.raises(OptionError, match="cannot be read as an n-gram LM"):
        NgramLM(bad)


# ---- lm_file= on models ---------------------------------------------------------------------------------

from conftest import ASR_MODELS, AUDIO, MODELS, RUNTIME, auto, exported  # noqa: E402
from funasr.auto_model import AutoModel  # noqa: E402

sys.path.insert(0, str(RUNTIME))
import funasr_onnx  # noqa: E402

WAVS = [str(AUDIO / "example.wav"), str(AUDIO / "sample.wav")]


def _model_lm(tmp_path, name: str) -> Path:
    """A 3-gram over the model's own tokens (every token once, then a few token sentences)."""
    tokens = json.loads((MODELS / name / "tokens.json").read_text(encoding="utf-8"))
    words = [t for t in tokens if t not in ("<blank>", "<s>", "</s>", "<unk>")]
    return train_arpa([words[i : i + 6] for i in range(0, len(words), 6)], 3, tmp_path / "model_lm.arpa")


@pytest.mark.parametrize("name", ASR_MODELS)
def test_lm_fusion_on_pytorch_and_onnxruntime(tmp_path, export_root, name):
    lm = _model_lm(tmp_path, name)
    model = auto(name)
    greedy = [r["text"] for r in model.generate(input=WAVS)]
    assert [r["text"] for r in model.generate(input=WAVS, lm_file=str(lm), lm_weight=0.0)] == greedy
    fused = [r["text"] for r in model.generate(input=WAVS, lm_file=str(lm), lm_weight=2.0, beam_size=4)]
    assert fused != greedy  # a heavy LM moves the random-weight model's choices
    onnx = funasr_onnx.AutoModel(model=str(exported(export_root, name)), quantize=False, disable_pbar=True)
    assert [r["text"] for r in onnx.generate(input=WAVS, lm_file=str(lm), lm_weight=2.0, beam_size=4)] == fused


def test_lm_file_on_models_without_an_lm_search_fails_before_work(tmp_path):
    lm = _model_lm(tmp_path, "paraformer_tiny")
    for name in ("paraformer_streaming_tiny", "u2pp_conformer_tiny"):
        with pytest.raises(OptionError, match="lm_file="):
            auto(name).generate(input=str(tmp_path / "never-read.wav"), lm_file=str(lm))


def test_a_model_folder_with_an_lm_uses_it_and_exports_it(tmp_path):
    folder = tmp_path / "paraformer_lm"
    shutil.copytree(MODELS / "paraformer_tiny", folder)
    shutil.copyfile(_model_lm(tmp_path, "paraformer_tiny"), folder / "lm.arpa")
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    (folder / "config.yaml").write_text(yaml.safe_dump({**config, "ngram_lm": {"lm_weight": 2.0}}), encoding="utf-8")
    explicit = [r["text"] for r in auto("paraformer_tiny").generate(input=WAVS, lm_file=str(folder / "lm.arpa"), lm_weight=2.0)]
    model = AutoModel(model=str(folder), device="cpu", disable_pbar=True)
    assert [r["text"] for r in model.generate(input=WAVS)] == explicit
    greedy = [r["text"] for r in auto("paraformer_tiny").generate(input=WAVS)]
    assert [r["text"] for r in model.generate(input=WAVS, lm_weight=0)] == greedy
    out = Path(model.export(type="onnx", output_dir=str(tmp_path / "exported")))
    assert (out / "lm.arpa").is_file()
    onnx = funasr_onnx.AutoModel(model=str(out), quantize=False, disable_pbar=True)
    assert [r["text"] for r in onnx.generate(input=WAVS)] == explicit


def test_a_model_folder_declares_the_beam_of_its_lm_search(tmp_path):
    folder = tmp_path / "paraformer_lm_beam"
    shutil.copytree(MODELS / "paraformer_tiny", folder)
    shutil.copyfile(_model_lm(tmp_path, "paraformer_tiny"), folder / "lm.arpa")
    config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    (folder / "config.yaml").write_text(yaml.safe_dump({**config, "ngram_lm": {"lm_weight": 2.0, "beam_size": 1}}), encoding="utf-8")
    model = AutoModel(model=str(folder), device="cpu", disable_pbar=True)
    greedy = [r["text"] for r in auto("paraformer_tiny").generate(input=WAVS)]
    assert [r["text"] for r in model.generate(input=WAVS)] == greedy  # a beam of 1 offers each position's best only
    wide = [r["text"] for r in auto("paraformer_tiny").generate(input=WAVS, lm_file=str(folder / "lm.arpa"), lm_weight=2.0,
                                                                beam_size=4)]
    assert wide != greedy
    assert [r["text"] for r in model.generate(input=WAVS, beam_size=4)] == wide  # the call's beam comes first
