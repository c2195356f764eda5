"""Training data: scp2jsonl/jsonl2scp, AudioDataset (features by the inference path, bad data), collate, the sampler."""
import json
import logging
import pickle

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import AUDIO, MODELS, PARITY, auto, read_wave
from funasr.audio import load_inputs
from funasr.bin import jsonl2scp as jsonl2scp_cli
from funasr.bin import scp2jsonl as scp2jsonl_cli
from funasr.config import resolve_model_dir
from funasr.data import IGNORE_ID
from funasr.data.dataset import AudioDataset, collate
from funasr.data.jsonl import read_kaldi_list, text_length
from funasr.data.sampler import BatchSampler, DataLoader
from funasr.errors import OptionError
from funasr.tasks import frontend_and_tokenizer

MODEL = MODELS / "paraformer_tiny"


@pytest.fixture(scope="module")
def parts():
    """The tiny Paraformer's frontend and tokenizer, built as inference builds them."""
    return frontend_and_tokenizer(resolve_model_dir(str(MODEL), {}))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, parts):
    """12 real clips cut from the parity audio (one at 8 kHz, one 44.1 kHz stereo), wav.scp, text and train.jsonl."""
    root = tmp_path_factory.mktemp("corpus")
    tokens = parts[1].token_list[3:300]
    wave = np.concatenate([read_wave("example.wav"), read_wave("sample.wav")])
    scp, text = [], []
    for i in range(12):
        n = 6000 + 2500 * i
        clip = wave[i * 9000 : i * 9000 + n]
        path = root / f"utt{i:02d}.wav"
        if i == 3:
            sf.write(path, clip[::2], 8000)  # 8 kHz: resampled on reading
        elif i == 4:
            import soxr

            up = soxr.resample(clip, 16000, 44100)
            sf.write(path, np.stack([up, up], axis=1), 44100)
        else:
            sf.write(path, clip, 16000)
        scp.append(f"utt{i:02d} {path}")
        text.append(f"utt{i:02d} {''.join(tokens[i * 7 : i * 7 + 3 + i % 5])}")
    (root / "wav.scp").write_text("\n".join(scp) + "\n", encoding="utf-8")
    (root / "text").write_text("\n".join(text) + "\n", encoding="utf-8")
    jsonl = root / "train.jsonl"
    assert scp2jsonl_cli.main([f"++scp_file_list=['{root / 'wav.scp'}','{root / 'text'}']",
                               "++data_type_list=['source','target']", f"++jsonl_file_out={jsonl}"]) == 0
    return root


def test_scp2jsonl_lengths_and_round_trip(corpus, tmp_path):
    lines = [json.loads(x) for x in (corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["key"] for x in lines] == [f"utt{i:02d}" for i in range(12)]
    for x in lines:
        samples = len(load_inputs(x["source"])[0].waveform)  # 16 kHz, as training decodes it
        assert x["source_len"] == int(samples * 1000 / 16000 / 10)
        assert x["target_len"] == len(x["target"])
    wav, txt = tmp_path / "wav.scp", tmp_path / "text.txt"
    assert jsonl2scp_cli.main(["--scp-file-list", str(wav), str(txt), "--jsonl-file-in", str(corpus / "train.jsonl")]) == 0
    assert read_kaldi_list(wav) == read_kaldi_list(corpus / "wav.scp")
    assert read_kaldi_list(txt) == read_kaldi_list(corpus / "text")


def test_text_length_counts_words_when_spaced():
    assert text_length("hello big world") == 3 and text_length("今天天气") == 4 and text_length("今天 天气") == 2


def test_scp2jsonl_leaves_out_missing_audio_and_keys(corpus, tmp_path, caplog):
    (tmp_path / "wav.scp").write_text(f"a {corpus / 'utt00.wav'}\ngone {tmp_path / 'gone.wav'}\nb {corpus / 'utt01.wav'}\n")
    (tmp_path / "text").write_text("a 的\ngone 的\n")
    with caplog.at_level(logging.WARNING):
        assert scp2jsonl_cli.main(["--scp-file-list", str(tmp_path / "wav.scp"), str(tmp_path / "text"),
                                   "--jsonl-file-out", str(tmp_path / "o.jsonl")]) == 0
    assert [json.loads(x)["key"] for x in (tmp_path / "o.jsonl").read_text().splitlines()] == ["a"]
    assert "key gone" in caplog.text and "key b is not in" in caplog.text


def test_scp2jsonl_needs_one_type_per_file(tmp_path, capsys):
    (tmp_path / "w").write_text("")
    assert scp2jsonl_cli.main(["--scp-file-list", str(tmp_path / "w"), "--data-type-list", "source", "target",
                               "--jsonl-file-out", str(tmp_path / "o.jsonl")]) == 1
    assert "data_type_list" in capsys.readouterr().err


def test_features_are_the_inference_features(corpus, parts):
    frontend, tokenizer = parts
    data = corpus / "example.jsonl"
    data.write_text(json.dumps({"key": "ex", "source": str(AUDIO / "example.wav"), "source_len": 554, "target": "的", "target_len": 1})
                    + "\n" + (corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()[3] + "\n", encoding="utf-8")
    ds = AudioDataset(str(data), frontend, tokenizer)
    task = auto("paraformer_tiny").task
    for i in range(2):
        item = ds[i]
        path = ds.index.entry(i)["source"]
        want = task.frontend.extract(load_inputs(path)[0].waveform)  # what AutoModel.generate feeds the model
        np.testing.assert_array_equal(item["speech"].numpy(), want)
    ref = np.load(PARITY / "intermediates" / "paraformer_tiny__example.npz")["feats"][0]  # FunASR's own features
    np.testing.assert_allclose(ds[0]["speech"].numpy(), ref, atol=1e-4)
    assert ds[0]["text"].tolist() == tokenizer.tokens2ids(["的"])


def test_sources_may_be_urls(corpus, parts, tmp_path):
    import http.server
    import threading
    from functools import partial

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(corpus)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/utt01.wav"
        (tmp_path / "url.jsonl").write_text(json.dumps({"key": "u", "source": url, "target": "的"}) + "\n")
        ds = AudioDataset(str(tmp_path / "url.jsonl"), *parts)  # source_len absent: measured through the URL
        item = ds[0]
    finally:
        server.shutdown()
    local = AudioDataset(str(corpus / "train.jsonl"), *parts)
    assert ds.index.source_len[0] == local.index.source_len[1] and ds.bad_data() == {}
    assert torch.equal(item["speech"], local[1]["speech"])


def _write_bad_list(corpus, tmp_path) -> str:
    good = (corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    line = lambda key, source, target, source_len=100: json.dumps(  # noqa: E731
        {"key": key, "source": str(source), "source_len": source_len, "target": target, "target_len": len(target)},
        ensure_ascii=False)
    liar = json.loads(good[5])
    liar.update(key="liar", source_len=3)
    rows = good[:4] + [
        "{this is not json",  # line 5
        line("empty", corpus / "utt00.wav", " "),  # line 6
        line("oov", corpus / "utt00.wav", "的qq"),  # line 7
        line("missing", tmp_path / "nowhere.wav", "的"),  # line 8
        line("broken", tmp_path / "broken.wav", "的"),  # line 9
        json.dumps(liar, ensure_ascii=False),  # line 10
    ] + good[4:]
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def _run(path: str, parts, num_workers: int) -> tuple[AudioDataset, list[dict]]:
    ds = AudioDataset(path, *parts)
    loader = DataLoader(ds, BatchSampler.from_conf(ds, {"batch_size": 3, "batch_type": "example"}), num_workers=num_workers)
    loader.set_epoch(0)
    return ds, list(loader)


BAD_COUNTS = {"bad_json": 1, "empty_target": 1, "unknown_tokens": 1, "bad_audio": 2, "source_len_fixed": 1}


def test_bad_data_is_reported_skipped_and_counted(corpus, parts, tmp_path, caplog):
    path = _write_bad_list(corpus, tmp_path)
    with caplog.at_level(logging.WARNING):
        ds, batches = _run(path, parts, num_workers=0)
    log = caplog.text
    assert f"{path} line 5" in log and "not JSON" in log
    assert f"{path} line 6 (key empty)" in log and "transcript is empty" in log
    assert f"{path} line 7 (key oov)" in log and "q" in log
    assert f"{path} line 8 (key missing)" in log and "does not exist" in log
    assert f"{path} line 9 (key broken)" in log
    assert f"{path} line 10 (key liar)" in log and "source_len 3 in the list" in log
    keys = [k for b in batches for k in b["keys"]]
    assert sorted(keys) == sorted([f"utt{i:02d}" for i in range(12)] + ["liar"])  # nothing good is lost
    assert ds.bad_data() == BAD_COUNTS
    liar = next(b for b in batches if "liar" in b["keys"])
    j = liar["keys"].index("liar")
    assert liar["speech_lengths"][j] == len(ds[ds.index.lineno.tolist().index(10)]["speech"])
    for b in batches:  # every batch keeps the layout, whatever was dropped from it
        assert b["speech"].shape[:2] == (len(b["keys"]), max(b["speech_lengths"].tolist(), default=0))


def test_index_problems_are_reported_by_rank_0_only(corpus, parts, tmp_path, caplog, monkeypatch):
    path = _write_bad_list(corpus, tmp_path)
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 1)
    with caplog.at_level(logging.WARNING):
        ds = AudioDataset(path, *parts)
    assert "line 6" not in caplog.text and ds.bad_data()["empty_target"] == 1  # rank 1: counted, not repeated
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: 0)
    with caplog.at_level(logging.WARNING):
        AudioDataset(path, *parts)
    assert f"{path} line 6 (key empty)" in caplog.text


def test_bad_data_counted_across_worker_processes(corpus, parts, tmp_path):
    ds, batches = _run(_write_bad_list(corpus, tmp_path), parts, num_workers=2)
    assert len([k for b in batches for k in b["keys"]]) == 13 and ds.bad_data() == BAD_COUNTS
    ds.set_epoch(1)  # a second epoch skips known-bad audio without counting it again
    assert len([k for b in DataLoader(ds, BatchSampler.from_conf(ds, {"batch_size": 3}), 2) for k in b["keys"]]) == 13
    assert ds.bad_data() == BAD_COUNTS


def test_a_wrong_source_len_hiding_a_too_long_audio(corpus, parts, tmp_path, caplog):
    entry = json.loads((corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()[11])
    real = entry["source_len"]
    entry["source_len"] = 20
    (tmp_path / "l.jsonl").write_text(json.dumps(entry, ensure_ascii=False) + "\n", encoding="utf-8")
    ds = AudioDataset(str(tmp_path / "l.jsonl"), *parts, max_source_length=real - 10)
    with caplog.at_level(logging.WARNING):
        assert ds[0] is None and ds[0] is None
    assert "source_len 20 in the list" in caplog.text and "over max_source_length" in caplog.text
    assert ds.bad_data() == {"too_long": 1}


def test_all_bad_batch_is_an_empty_batch():
    batch = collate([None, None], 560)
    assert batch["keys"] == [] and batch["speech"].shape == (0, 0, 560) and batch["text"].shape == (0, 0)
    assert batch["speech_lengths"].dtype == torch.int64 and batch["text_lengths"].shape == (0,)


def test_collate_pads_with_zero_and_ignore_id():
    items = [{"key": "a", "speech": torch.ones(3, 4), "text": torch.tensor([5, 6])},
             None,
             {"key": "b", "speech": torch.ones(5, 4), "text": torch.tensor([7, 8, 9])}]
    batch = collate(items, 4)
    assert batch["keys"] == ["a", "b"] and batch["speech"].dtype == torch.float32 and batch["text"].dtype == torch.int64
    assert batch["speech"][0, 3:].abs().sum() == 0 and batch["text"][0].tolist() == [5, 6, IGNORE_ID]
    assert batch["speech_lengths"].tolist() == [3, 5] and batch["text_lengths"].tolist() == [2, 3]


def test_index_keeps_no_parsed_copy_of_the_list(corpus, parts):
    ds = AudioDataset(str(corpus / "train.jsonl"), *parts)
    for name in ("file", "offset", "lineno", "source_len", "target_len"):
        assert isinstance(getattr(ds.index, name), np.ndarray)
    assert len(pickle.dumps(ds.index)) < 1500 + 40 * len(ds)  # a few bytes per utterance, no dicts or strings
    assert ds.index.entry(2)["key"] == "utt02"


def test_length_filters(corpus, parts):
    full = AudioDataset(str(corpus / "train.jsonl"), *parts)
    lens = full.index.source_len
    ds = AudioDataset(str(corpus / "train.jsonl"), *parts, min_source_length=int(lens[2]), max_source_length=int(lens[8]))
    assert len(ds) == int(((lens >= lens[2]) & (lens <= lens[8])).sum()) and "length_filter" in ds.bad_data()


def test_speed_perturbation_is_seeded(corpus, parts):
    data = str(corpus / "train.jsonl")
    plain = AudioDataset(data, *parts)
    ds = AudioDataset.from_conf(data, *parts, {"speed_perturb": [0.9, 1.1]}, seed=3)
    samples = lambda d, i: len(d.waveform(i, d.index.entry(i)["source"], "k"))  # noqa: E731
    ds.set_epoch(1)
    first = [samples(ds, i) for i in range(12)]
    assert first == [samples(ds, i) for i in range(12)]
    ratios = {round(samples(plain, i) / n, 2) for i, n in enumerate(first)}
    assert ratios == {0.9, 1.1}  # every item sped up or slowed down, both factors drawn
    ds.set_epoch(2)
    assert [samples(ds, i) for i in range(12)] != first
    assert not torch.equal(ds[0]["speech"][:5], plain[0]["speech"][:5])
    valid = AudioDataset.from_conf(data, *parts, {"speed_perturb": [0.9, 1.1]}, is_training=False)
    assert torch.equal(valid[0]["speech"], plain[0]["speech"])
    with pytest.raises(OptionError, match="speed_perturb"):
        AudioDataset(data, *parts, speed_perturb=[0.0, 1.0])


# ---- the sampler, on list lengths (no audio needed) ----

RNG = np.random.default_rng(0)
SRC = RNG.integers(50, 1500, size=500)
TGT = SRC // 25


def _sampler(**kw) -> BatchSampler:
    conf = dict(batch_size=4000, batch_type="token", sort_size=64, seed=7)
    conf.update(kw)
    return BatchSampler(SRC, TGT, **conf)


@pytest.mark.parametrize("batch_type", ["token", "length", "example"])
def test_sampler_covers_each_item_once_within_budget(batch_type):
    size = 12 if batch_type == "example" else 4000
    s = _sampler(batch_type=batch_type, batch_size=size, batch_size_sample_max=10)
    batches = list(s)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(len(SRC)))
    for b in batches:
        assert len(b) <= 10
        if batch_type == "example":
            assert len(b) <= size
        elif len(b) > 1:
            assert SRC[b].max() * len(b) <= size


def test_sampler_is_seeded_by_seed_and_epoch():
    a, b = _sampler(), _sampler()
    assert list(a) == list(b)
    b.set_epoch(1)
    assert list(a) != list(b)
    assert list(a) != list(_sampler(seed=8))
    assert list(_sampler(shuffle=False)) == list(_sampler(shuffle=False, seed=9))


def test_sampler_rank_shares_make_the_one_process_batches():
    # two ranks see the global batches of one process with twice the budget, when those have >= 2 items each
    one = lambda seed: list(_sampler(batch_size=8000, batch_size_sample_max=40, seed=seed))  # noqa: E731
    seed = next(s for s in range(100) if min(map(len, one(s))) >= 2)
    ranks = [list(_sampler(rank=r, world_size=2, batch_size_sample_max=20, seed=seed)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(one(seed))
    for glob, r0, r1 in zip(one(seed), *ranks):
        assert sorted(r0 + r1) == sorted(glob) and r0 and r1 and abs(len(r0) - len(r1)) <= 1


def test_sampler_gives_every_rank_an_item():
    src = np.array([3000, 3000, 3000, 10, 10])  # one utterance fills a batch on its own
    shares = [list(BatchSampler(src, src * 0, 4000, rank=r, world_size=2, sort_size=0)) for r in range(2)]
    assert len(shares[0]) == len(shares[1]) and all(b for r in shares for b in r)
    assert sorted(i for r in shares for b in r for i in b) == list(range(5))


def test_sampler_max_token_length_and_global_sort():
    s = _sampler(max_token_length=1000)
    assert sorted(i for b in s for i in b) == [i for i in range(len(SRC)) if SRC[i] <= 1000]
    g = BatchSampler.from_conf(type("D", (), {"index": type("I", (), {"source_len": SRC, "target_len": TGT})})(),
                               {"batch_sampler": "EspnetStyleBatchSampler", "batch_type": "token", "batch_size": 4000})
    for b in g:  # token length = source_len + int(1.2 * target_len)
        assert (SRC[b] + (1.2 * TGT[b]).astype(int)).max() * len(b) <= 4000 or len(b) == 1


def test_sampler_rejects_bad_options():
    with pytest.raises(OptionError, match="batch_type"):
        _sampler(batch_type="frames")
    with pytest.raises(OptionError, match="batch_size"):
        _sampler(batch_size=0)
    with pytest.raises(OptionError, match="rank"):
        _sampler(rank=2, world_size=2)


def test_sampler_resumes_with_the_remaining_batches():
    s = _sampler()
    s.set_epoch(3)
    full = list(s)
    state = s.state_dict(batches_done=5)
    t = _sampler()
    t.load_state_dict(state)
    assert list(t) == full[5:] and len(t) == len(full) - 5


def test_loader_resumes_exactly(corpus, parts):
    conf = {"batch_size": 300, "batch_type": "token", "sort_size": 4, "num_workers": 0}
    ds = AudioDataset.from_conf(str(corpus / "train.jsonl"), *parts, {"speed_perturb": [0.9, 1.0, 1.1]})
    loader = DataLoader.from_conf(ds, conf, seed=5)
    loader.set_epoch(2)
    full, state = [], None
    for n, batch in enumerate(loader, 1):
        full.append(batch)
        if n == 2:
            state = loader.state_dict()
    again = DataLoader.from_conf(AudioDataset.from_conf(str(corpus / "train.jsonl"), *parts, {"speed_perturb": [0.9, 1.0, 1.1]}),
                                 conf, seed=5)
    again.load_state_dict(json.loads(json.dumps(state)))
    rest = list(again)
    assert len(full) > 3 and len(rest) == len(full) - 2
    for want, got in zip(full[2:], rest):
        assert want["keys"] == got["keys"]
        torch.testing.assert_close(want["speech"], got["speech"], rtol=0, atol=0)
        assert torch.equal(want["text"], got["text"])


def test_funasr_cer_counts_hand_checked(tmp_path, capsys):
    from funasr.bin import cer

    (tmp_path / "ref").write_text("a 今天，天气好\nb hello world foo\nc 好\n", encoding="utf-8")
    (tmp_path / "hyp").write_text("a 今天天汽好了<unk>\nb Hello, word foo bar\nx 多余\n", encoding="utf-8")
    assert cer.main([str(tmp_path / "ref"), str(tmp_path / "hyp"), "--details"]) == 0
    out = capsys.readouterr().out
    # a: 汽 for 气 (sub), 了 inserted; b: "helloword foobar" vs "helloworldfoo": l deleted, b a r inserted; c: missing
    assert "a CER 40.00 [ 2 / 5, 1 ins, 0 del, 1 sub ]" in out
    assert "%CER 36.84 [ 7 / 19, 4 ins, 2 del, 1 sub ]" in out
    # words: a [今天 天气好] vs [今天天汽好了]: 1 sub 1 del; b: world->word sub, bar ins; c: 1 del
    assert "%WER 83.33 [ 5 / 6, 1 ins, 2 del, 2 sub ]" in out
    assert "missing from the hypothesis: 1, not in the reference (ignored): 1" in out
    assert cer.align(list("abc"), list("abc")).errors == 0 and cer.align([], list("ab")).ins == 2
    assert cer.alignment(list("今天天气好"), list("今天天汽好了")) == [
        ("今", "今"), ("天", "天"), ("天", "天"), ("气", "汽"), ("好", "好"), (None, "了")]
    assert cer.alignment(list("abc"), list("ac")) == [("a", "a"), ("b", None), ("c", "c")]
    assert cer.alignment([], []) == [] and cer.alignment(list("ab"), []) == [("a", None), ("b", None)]


def test_list_of_lists_relative_paths_and_measured_lengths(corpus, parts, tmp_path):
    lines = (corpus / "train.jsonl").read_text(encoding="utf-8").splitlines()
    first = []
    for line in lines[:3]:  # relative audio paths, no source_len: taken from the list's folder, measured
        entry = json.loads(line)
        entry["source"] = entry["source"].rsplit("/", 1)[1]
        del entry["source_len"]
        first.append(json.dumps(entry, ensure_ascii=False))
    (corpus / "rel.jsonl").write_text("\n".join(first) + "\n", encoding="utf-8")
    (tmp_path / "more.jsonl").write_text("\n".join(lines[3:5]) + "\n", encoding="utf-8")
    (tmp_path / "data.list").write_text(f"{corpus / 'rel.jsonl'}\n{tmp_path / 'more.jsonl'}\n")
    ds = AudioDataset(str(tmp_path / "data.list"), *parts)
    full = AudioDataset(str(corpus / "train.jsonl"), *parts)
    assert len(ds) == 5 and ds.bad_data() == {}
    assert ds.index.source_len.tolist() == full.index.source_len[:5].tolist()
    assert [ds[i]["key"] for i in range(5)] == [f"utt{i:02d}" for i in range(5)]
    assert ds.index.where(3) == f"{tmp_path / 'more.jsonl'} line 1"


def test_text2tokens_uses_the_seg_dict(tmp_path):
    from funasr.tokenizer import CharTokenizer

    (tmp_path / "seg_dict").write_text("hello hel@@ lo\nworld world\n你 你\n")
    tok = CharTokenizer(["<blank>", "hel@@", "lo", "world", "你", "<unk>"], seg_dict=str(tmp_path / "seg_dict"))
    assert tok.text2tokens("Hello world 你") == ["hel@@", "lo", "world", "你"]
    assert tok.text2tokens("hello xyz") == ["hel@@", "lo", "<unk>"]
    assert CharTokenizer(["a"]).text2tokens("今天 天气") == ["今", "天", "天", "气"]


def test_loader_rank_shares_on_real_data(corpus, parts):
    ds = AudioDataset(str(corpus / "train.jsonl"), *parts)
    conf = {"batch_type": "example", "num_workers": 0, "batch_size_sample_max": 4}
    one = DataLoader.from_conf(ds, {**conf, "batch_size": 4, "batch_size_sample_max": 8}, seed=2, rank=0, world_size=1)
    ranks = [DataLoader.from_conf(ds, {**conf, "batch_size": 2}, seed=2, rank=r, world_size=2) for r in range(2)]
    for loader in (one, *ranks):
        loader.set_epoch(1)
    assert len(one) == len(ranks[0]) == len(ranks[1]) == 3
    for glob, b0, b1 in zip(one, *ranks):
        assert sorted(glob["keys"]) == sorted(b0["keys"] + b1["keys"]) and len(b0["keys"]) == len(b1["keys"]) == 2
