"""The VAD -> ASR -> punctuation pipeline against the reference, and its data-keeping rules."""
import re

import numpy as np
import pytest
import soundfile as sf

from conftest import AUDIO, TOLERANCE_MS, norm_text, parity_cases, parity_path
from funasr import AutoModel

CASES = parity_cases("pipe/")


def _build(case: dict) -> AutoModel:
    init = {k: str(parity_path(v)) if k.endswith("model") else v for k, v in case["init"].items()}
    return AutoModel(**init, disable_pbar=True)


@pytest.fixture(scope="module")
def bicif_chain():
    return _build(next(c for c in CASES if c["id"] == "pipe/bicif_punc_sent/pub_concat"))


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_pipeline_parity(case):
    (out,) = _build(case).generate(input=str(parity_path(case["input"])), **case["generate"])
    (exp,) = case["expected"]
    assert out["key"] == exp["key"]
    assert norm_text(out["text"], spaces=False) == norm_text(exp["text"], spaces=False)
    assert len(out["timestamp"]) == len(exp["timestamp"])
    assert np.abs(np.array(out["timestamp"]) - np.array(exp["timestamp"])).max() <= TOLERANCE_MS
    if "sentence_info" in exp:
        got, want = out["sentence_info"], exp["sentence_info"]
        assert len(got) == len(want)
        for g, w in zip(got, want):
            assert abs(g["start"] - w["start"]) <= TOLERANCE_MS and abs(g["end"] - w["end"]) <= TOLERANCE_MS
            assert g["timestamp"] == w["timestamp"]
        # Up to the first VAD boundary the reference's sentence texts are right; after it they slip
        # (docs/compatibility.md). Ours stay aligned: the sentences spell out the punctuated text.
        first_gap = next(i for i, s in enumerate(want) if s["end"] > 6000)
        assert [g["text"] for g in got[:first_gap]] == [w["text"] for w in want[:first_gap]]
        # (sentence texts use full-width marks and the ASR's lower case, as the reference's do)
        full_width = str.maketrans({"?": "？", ".": "。", ",": "，"})
        assert "".join(norm_text(g["text"], spaces=False) for g in got).lower() == norm_text(out["text"], spaces=False).translate(full_width).lower()


def test_sentences_carry_one_stamp_per_character(bicif_chain):
    (out,) = bicif_chain.generate(input=str(AUDIO / "pub_concat.wav"), batch_size_s=60, sentence_timestamp=True)
    for s in out["sentence_info"]:
        units = re.findall(r"[A-Za-z']+|[^\sA-Za-z'，。？、]", s["text"])
        assert len(units) == len(s["timestamp"])


def test_batching_does_not_change_results(bicif_chain):
    wav = str(AUDIO / "pub_concat.wav")
    (one,) = bicif_chain.generate(input=wav, batch_size_s=0)
    (many,) = bicif_chain.generate(input=wav, batch_size_s=600)
    assert one == many


def test_no_speech_still_has_a_result(bicif_chain, tmp_path):
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(16000 * 3, dtype=np.float32), 16000)
    (out,) = bicif_chain.generate(input=str(quiet), sentence_timestamp=True)
    assert out == {"key": "quiet", "text": "", "timestamp": [], "sentence_info": []}


def test_bad_file_in_a_batch_keeps_the_others(bicif_chain, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00garbage")
    out = bicif_chain.generate(input=[str(bad), str(AUDIO / "example.wav")])
    assert out[0]["key"] == "broken" and "broken.wav" in out[0]["error"]
    assert out[1]["key"] == "example" and out[1]["text"]


def test_raw_text_and_merge_vad(bicif_chain):
    wav = str(AUDIO / "pub_concat.wav")
    (out,) = bicif_chain.generate(input=wav, return_raw_text=True, merge_vad=True, merge_length_s=100)
    assert "raw_text" in out and "，" not in out["raw_text"] and out["timestamp"]
    assert out["timestamp"][0][0] >= 0 and out["timestamp"] == sorted(out["timestamp"])


def test_output_dir_writes_kaldi_files(bicif_chain, tmp_path):
    bicif_chain.generate(input=str(AUDIO / "example.wav"), output_dir=str(tmp_path))
    line = (tmp_path / "1best_recog" / "text").read_text(encoding="utf-8").strip()
    assert line.startswith("example ")


@pytest.mark.parametrize("block_s", [3, 7.5, 600])
def test_file_read_in_blocks_equals_audio_in_memory(bicif_chain, monkeypatch, block_s):
    import funasr.pipeline

    wav = AUDIO / "pub_concat.wav"
    in_memory = bicif_chain.generate(input=sf.read(wav, dtype="float32")[0], sentence_timestamp=True)[0]
    monkeypatch.setattr(funasr.pipeline, "VAD_BLOCK", int(16000 * block_s))
    from_disk = bicif_chain.generate(input=str(wav), sentence_timestamp=True)[0]
    assert from_disk.pop("key") == "pub_concat"
    in_memory.pop("key")
    assert from_disk == in_memory


def test_a_long_file_is_recognised_block_by_block_with_bounded_frames(bicif_chain, monkeypatch, tmp_path):
    import funasr.pipeline

    clip = sf.read(AUDIO / "pub_concat.wav", dtype="float32")[0]
    wav = tmp_path / "long.wav"
    sf.write(wav, np.concatenate([clip] * 10), 16000, subtype="PCM_16")  # 3.6 minutes
    in_memory = bicif_chain.generate(input=sf.read(wav, dtype="float32")[0], sentence_timestamp=True)[0]
    held: list[int] = []  # fbank frames the pipeline holds each time ASR runs
    real = funasr.pipeline.FbankFrames.__init__

    def spy(self, blocks, *args):
        real(self, blocks, *args)
        held.append(int(self.starts[-1] - self.starts[0]))

    monkeypatch.setattr(funasr.pipeline.FbankFrames, "__init__", spy)
    from_disk = bicif_chain.generate(input=str(wav), sentence_timestamp=True)[0]
    assert from_disk.pop("key") == "long" and in_memory.pop("key")
    assert from_disk == in_memory
    # ASR ran after each minute-long VAD block and held at most two blocks' frames, never the recording's 21600
    assert len(held) >= 3 and max(held) <= 2 * 6000


def test_long_file_stays_on_disk():
    from funasr.audio import Source, open_recording

    recording = open_recording(Source("pub_concat", str(AUDIO / "pub_concat.wav")))
    assert recording.waveform is None and recording.length == sf.info(AUDIO / "pub_concat.wav").frames
    full = sf.read(AUDIO / "pub_concat.wav", dtype="float32")[0]
    np.testing.assert_array_equal(recording.read(12345, 67890), full[12345:67890])


def test_fbank_is_computed_once_per_recording(bicif_chain, monkeypatch):
    from funasr.fbank import Fbank

    wav = AUDIO / "pub_concat.wav"
    computed: list[int] = []
    real = Fbank.many  # every fbank frame goes through it

    def counting(self, signals):
        frames = real(self, signals)
        computed.extend(len(f) for f in frames)
        return frames

    monkeypatch.setattr(Fbank, "many", counting)
    assert bicif_chain.pipeline.shares_fbank()
    (once,) = bicif_chain.generate(input=str(wav), batch_size_s=60)
    every_frame = 1 + (sf.info(str(wav)).frames - 400) // 160
    assert sum(computed) == every_frame  # the VAD's frames, which ASR reuses
    computed.clear()
    monkeypatch.setattr(type(bicif_chain.pipeline), "shares_fbank", lambda self: False)
    (twice,) = bicif_chain.generate(input=str(wav), batch_size_s=60)
    assert sum(computed) > 1.5 * every_frame  # VAD, then ASR again on each segment
    assert once == twice
