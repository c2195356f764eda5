"""What bad arguments and bad inputs of ``AutoModel(...)`` / ``generate(...)`` / ``funasr`` get: a catalogue.

Every bad value raises ``funasr.errors.OptionError`` (a ``FunASRError`` and a ``ValueError``) naming the
argument and the value, before any work; in a list, a bad item becomes ``{"key", "error"}`` and the
others keep their results; keys and output file names never collide.
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
from functools import lru_cache

import numpy as np
import pytest

from conftest import AUDIO, MODELS, ROOT, full_disk, read_wave
from funasr.audio import collect_sources
from funasr.auto_model import AutoModel
from funasr.errors import AudioError, FunASRError, HotwordError, OptionError
from funasr.tasks.vad import VADTask
from funasr.writers import write_results


@lru_cache(maxsize=None)
def _model(name: str, vad: bool = False, punc: bool = False) -> AutoModel:
    return AutoModel(
        model="fsmn-vad" if name == "fsmn-vad" else str(MODELS / name),
        vad_model="fsmn-vad" if vad else None,
        punc_model=str(MODELS / "ct_punc_tiny") if punc else None,
        device="cpu",
        disable_pbar=True,
    )


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "funasr", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


# ---- values that are not allowed: OptionError naming the argument and the value ----------------

BAD_GENERATE = [
    ("fsmn-vad", {"chunk_size": math.nan}, "chunk_size=nan"),
    ("fsmn-vad", {"chunk_size": math.inf}, "chunk_size=inf"),
    ("fsmn-vad", {"chunk_size": "200"}, "chunk_size='200'"),
    ("fsmn-vad", {"chunk_size": 0}, "chunk_size=0"),
    ("fsmn-vad", {"chunk_size": [0, 10, 5]}, "chunk_size=[0, 10, 5]"),
    ("fsmn-vad", {"cache": []}, "cache=[]"),
    ("fsmn-vad", {"fs": 0}, "fs=0"),
    ("fsmn-vad", {"batch_size": "2"}, "batch_size='2'"),
    ("fsmn-vad", {"batch_size": 1.5}, "batch_size=1.5"),
    ("fsmn-vad", {"batch_size": 0}, "batch_size=0"),
    ("fsmn-vad", {"batch_size": -1}, "batch_size=-1"),
    ("fsmn-vad", {"max_end_silence_time": "abc"}, "max_end_silence_time='abc'"),
    ("fsmn-vad", {"max_single_segment_time": 0}, "max_single_segment_time=0"),
    ("fsmn-vad", {"speech_noise_thres": math.nan}, "speech_noise_thres=nan"),
    ("fsmn-vad", {"formats": "json,doc", "output_dir": "unused"}, "doc"),
    ("paraformer_tiny", {"batch_size_s": "300"}, "batch_size_s='300'"),
    ("paraformer_tiny", {"merge_length_s": 0}, "merge_length_s=0"),
    ("paraformer_tiny", {"merge_length_s": -5}, "merge_length_s=-5"),
    ("paraformer_tiny", {"pred_timestamp": "yes"}, "pred_timestamp='yes'"),
    ("paraformer_tiny", {"lm_file": "no/such/lm.arpa"}, "lm_file='no/such/lm.arpa'"),
    ("paraformer_tiny", {"lm_file": MODELS / "paraformer_tiny" / "config.yaml", "lm_weight": -1}, "lm_weight=-1"),
]


@pytest.mark.parametrize("name, kwargs, message", BAD_GENERATE, ids=[m for _, _, m in BAD_GENERATE])
def test_bad_generate_values_raise_option_error(name, kwargs, message, tmp_path):
    model = _model(name, vad=name != "fsmn-vad")
    kwargs = {k: str(tmp_path / v) if k == "output_dir" else v for k, v in kwargs.items()}
    with pytest.raises(OptionError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        model.generate(str(tmp_path / "never-read.wav"), **kwargs)  # raised before the input is looked at
    assert isinstance(err.value, FunASRError) and isinstance(err.value, ValueError)


@pytest.mark.parametrize(
    "kwargs, message",
    [({"device": "bogus"}, "device='bogus'"), ({"ncpu": -1}, "ncpu=-1"), ({"batch_size": 0}, "batch_size=0"),
     ({"max_single_segment_time": -1}, "max_single_segment_time=-1"), ({"vad_kwargs": {"max_end_silence_time": "x"}}, "max_end_silence_time='x'"),
     ({"fp16": "no"}, "fp16='no'"), ({"bf16": "false"}, "bf16='false'")],
)
def test_bad_constructor_values_raise_option_error(kwargs, message):
    with pytest.raises(OptionError, match=message):
        AutoModel(model="fsmn-vad", disable_pbar=True, **kwargs)


def test_vad_task_takes_chunk_size_in_milliseconds_only():
    """A list-valued chunk_size (a streaming ASR model's) is refused, not silently replaced by 60 s."""
    with pytest.raises(OptionError, match="chunk_size"):
        _model("fsmn-vad").generate(read_wave("example.wav"), chunk_size=[0, 10, 5])
    assert isinstance(_model("fsmn-vad").task, VADTask)


def test_formats_take_a_comma_string(tmp_path):
    _model("fsmn-vad").generate(str(AUDIO / "example.wav"), output_dir=str(tmp_path), formats="json")
    assert (tmp_path / "example.json").is_file()
    _model("fsmn-vad").generate(str(AUDIO / "example.wav"), output_dir=str(tmp_path / "two"), formats="json,txt")
    assert sorted(p.name for p in (tmp_path / "two").glob("example.*")) == ["example.json", "example.txt"]


def test_links_planted_in_the_output_folder_are_replaced_not_followed(tmp_path):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep me")
    out = tmp_path / "out"
    (out / "1best_recog").mkdir(parents=True)
    (out / "1best_recog" / "text").symlink_to(outside)
    (out / "example.json").symlink_to(outside)
    _model("fsmn-vad").generate(str(AUDIO / "example.wav"), output_dir=str(out), formats="json")
    assert outside.read_text() == "keep me"
    for written in (out / "1best_recog" / "text", out / "example.json"):
        assert not written.is_symlink() and written.stat().st_size > 0


FULL_DISK = r"""
import json, logging, sys
sys.path.insert(0, sys.argv[1])
from funasr.auto_model import AutoModel
logging.basicConfig(level=logging.ERROR)
out = AutoModel(model="fsmn-vad", disable_pbar=True).generate(sys.argv[2:-1], output_dir=sys.argv[-1], formats="json")
print(json.dumps([r["value"] for r in out]))
"""


def test_a_write_that_fails_mid_run_loses_no_result(tmp_path):
    """Files that cannot be written (a full disk: here a 1-byte file size limit) end the writing with one error, and
    ``generate`` still returns every result."""
    inputs = [str(AUDIO / name) for name in ("example.wav", "sample.wav")]
    want = [r["value"] for r in _model("fsmn-vad").generate(inputs)]
    run = subprocess.run([sys.executable, "-c", FULL_DISK, str(ROOT), *inputs, str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=300, preexec_fn=full_disk)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == want and all(want)
    assert run.stderr.count("later results were not written") == 1 and "File too large" in run.stderr


def test_unknown_arguments_are_named_in_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="funasr.options"):
        (out,) = _model("fsmn-vad").generate(read_wave("example.wav"), max_end_silense_time=500, use_itn=True)
    assert "max_end_silense_time" in caplog.text and "use_itn" not in caplog.text
    assert out["value"]


@pytest.mark.parametrize("hotword, message", [(5, "not text"), (["x", 5], "not text"), ("missing-hotwords.txt", "does not exist")])
def test_bad_hotwords_fail_the_call_before_any_audio(hotword, message, tmp_path):
    """A hotword argument concerns every input: it raises once, before the inputs are read, never per item."""
    with pytest.raises(HotwordError, match=message):
        _model("seaco_paraformer_tiny").generate([str(tmp_path / "never-read.wav")] * 2, hotword=hotword)


def test_hotwords_for_a_model_without_them_are_named_in_one_warning(caplog):
    model = _model("paraformer_tiny")
    with caplog.at_level(logging.WARNING, logger="funasr.tasks.asr"):
        plain = model.generate(read_wave("example.wav"))
        for _ in range(2):
            assert model.generate(read_wave("example.wav"), hotword="魔搭 达摩院") == plain  # ignored, as FunASR does
        assert model.generate(read_wave("example.wav"), hotword="") == plain
    assert [r.getMessage().count("takes no hotwords") for r in caplog.records] == [1]
    assert "魔搭 达摩院" in caplog.text


def test_cli_batch_size_s_without_a_vad_is_refused():
    run = _cli(str(AUDIO / "example.wav"), "--model", str(MODELS / "paraformer_tiny"), "--batch-size-s", "60")
    assert run.returncode == 2 and "--batch-size-s batches the speech segments of a VAD" in run.stderr


# ---- item 1: batch_size never loses inputs --------------------------------------------------------

def test_batch_size_two_keeps_every_input():
    wavs = [str(AUDIO / f"{n}.wav") for n in ("example", "sample", "pub_concat")]
    out = _model("fsmn-vad").generate(wavs, batch_size=2)
    assert [r["key"] for r in out] == ["example", "sample", "pub_concat"]


# ---- item 2: keys are unique ----------------------------------------------------------------------

def test_deduplicated_keys_never_collide(tmp_path):
    for folder in ("in", "k"):
        (tmp_path / folder).mkdir()
    shutil.copy(AUDIO / "example.wav", tmp_path / "in" / "good1.wav")
    shutil.copy(AUDIO / "sample.wav", tmp_path / "k" / "good1_1.wav")
    inputs = [str(tmp_path / "in/good1.wav"), str(tmp_path / "in/good1.wav"), str(tmp_path / "k/good1_1.wav")]
    keys = [s.key for s in collect_sources(inputs)[0]]
    assert len(set(keys)) == 3 and keys[0] == "good1" and keys[2] == "good1_1"
    out = _model("fsmn-vad").generate(inputs, output_dir=str(tmp_path / "out"))
    assert len({r["key"] for r in out}) == 3
    lines = (tmp_path / "out" / "1best_recog" / "text").read_text(encoding="utf-8").splitlines()
    assert len({line.split()[0] for line in lines}) == 3
    run = _cli(*inputs, "--vad-model", "fsmn-vad", "-o", str(tmp_path / "cli"), "-q")
    assert run.returncode == 0, run.stderr
    assert len({line.split("\t")[0] for line in run.stdout.splitlines()}) == 3


# ---- item 3: output file names are unique within a run ---------------------------------------------

def test_keys_with_the_same_file_stem_write_two_files(tmp_path):
    write_results([{"key": "a b", "text": "one"}, {"key": "a_b", "text": "two"}], tmp_path, ["txt"])
    texts = sorted(p.read_text(encoding="utf-8") for p in tmp_path.glob("*.txt"))
    assert texts == ["one\n", "two\n"]


# ---- item 5: one cache is one stream --------------------------------------------------------------

def test_streaming_vad_refuses_a_list_with_one_cache():
    cache: dict = {}
    with pytest.raises(OptionError, match="cache"):
        _model("fsmn-vad").generate([read_wave("example.wav")[:3200], read_wave("sample.wav")[:3200]], cache=cache, chunk_size=200)
    assert cache == {}  # no work was done


# ---- item 9: one bad item of a list costs the others nothing ------------------------------------

@pytest.mark.parametrize("bad", [None, 3, {"source": "x"}, np.array(["a", "b"])], ids=["None", "int", "dict", "str-array"])
def test_unsupported_item_in_a_list_becomes_an_error_result(bad):
    out = _model("fsmn-vad").generate([str(AUDIO / "example.wav"), bad])
    assert out[0]["key"] == "example" and out[0]["value"]
    assert set(out[1]) == {"key", "error"}
    with pytest.raises(AudioError):
        _model("fsmn-vad").generate(bad)


def test_malformed_jsonl_line_becomes_an_error_result(tmp_path):
    listing = tmp_path / "list.jsonl"
    listing.write_text(f'{{"key": "a", "source": "{AUDIO / "example.wav"}"}}\n{{not json\n{{"key": "b"}}\n', encoding="utf-8")
    out = _model("fsmn-vad").generate(str(listing))
    assert out[0]["key"] == "a" and out[0]["value"]
    assert [set(r) for r in out[1:]] == [{"key", "error"}, {"key", "error"}]


def test_json_array_list_file(tmp_path):
    listing = tmp_path / "list.json"
    listing.write_text(json.dumps([{"key": "a", "source": str(AUDIO / "example.wav")}, str(AUDIO / "sample.wav")]), encoding="utf-8")
    out = _model("fsmn-vad").generate(str(listing))
    assert [r["key"] for r in out] == ["a", "sample"] and all(r["value"] for r in out)


def test_list_files_saved_with_a_byte_order_mark(tmp_path):
    wav = str(AUDIO / "example.wav")
    (tmp_path / "wav.scp").write_text(f"k1 {wav}\r\n", encoding="utf-8-sig")
    (tmp_path / "list.jsonl").write_text(json.dumps({"key": "j1", "source": wav}) + "\n" + json.dumps(wav) + "\n", encoding="utf-8-sig")
    (tmp_path / "texts.txt").write_text("t1 今天天气不错\n", encoding="utf-8-sig")
    out = _model("fsmn-vad").generate([str(tmp_path / "wav.scp"), str(tmp_path / "list.jsonl")])
    assert [r["key"] for r in out] == ["k1", "j1", "example"] and all(r["value"] for r in out)
    assert _model("ct_punc_tiny").generate(str(tmp_path / "texts.txt"))[0]["key"] == "t1"


def test_text_list_lines_without_a_key_are_punctuated(tmp_path):
    listing = tmp_path / "plain.txt"
    listing.write_text("今天天气不错我们去学习\nk2 跨境河流是养育沿岸人民的生命之源\n", encoding="utf-8")
    out = _model("ct_punc_tiny").generate(str(listing))
    words = [re.sub(r"\W", "", r["text"].replace("<unk>", "")) for r in out]
    assert out[0]["key"].startswith("rand_key_") and words[0] == "今天天气不错我们去学习"
    assert out[1]["key"] == "k2" and words[1] == "跨境河流是养育沿岸人民的生命之源"


def test_an_empty_list_file_is_named_in_a_warning(tmp_path, caplog):
    for name, model in (("wav.scp", "fsmn-vad"), ("texts.txt", "ct_punc_tiny")):
        (tmp_path / name).write_text("\n", encoding="utf-8")
        with caplog.at_level(logging.WARNING):
            assert _model(model).generate(str(tmp_path / name)) == []
        assert f"{tmp_path / name} lists no" in caplog.text


def test_punctuation_inputs_that_are_not_text(tmp_path):
    punc = _model("ct_punc_tiny")
    with pytest.raises(AudioError, match="missing.txt"):
        punc.generate(input=str(tmp_path / "missing.txt"))
    with pytest.raises(AudioError, match="NoneType"):
        punc.generate(input=None)
    out = punc.generate(input=[None, "今天天气不错"])
    assert set(out[0]) == {"key", "error"} and out[1]["text"]


# ---- item 10: the output folder is checked before the work ---------------------------------------

def test_output_dir_that_is_a_file_fails_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for output_dir in (blocker, blocker / "sub"):
        with pytest.raises(OptionError, match="output_dir"):
            _model("fsmn-vad").generate(str(AUDIO / "example.wav"), output_dir=str(output_dir))


def test_files_in_the_way_inside_output_dir(tmp_path):
    wavs = [str(AUDIO / "example.wav"), str(AUDIO / "sample.wav")]
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1best_recog").write_text("x")
    with pytest.raises(OptionError, match="1best_recog"):
        _model("fsmn-vad").generate(wavs, output_dir=str(tmp_path / "a"), formats="json")
    (tmp_path / "b" / "example.json").mkdir(parents=True)
    out = _model("fsmn-vad").generate(wavs, output_dir=str(tmp_path / "b"), formats="json")
    assert json.loads((tmp_path / "b" / "example_1.json").read_text(encoding="utf-8"))["key"] == out[0]["key"]
    assert (tmp_path / "b" / "sample.json").is_file()


def test_cli_output_dir_that_is_a_file_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    run = _cli(str(AUDIO / "example.wav"), str(AUDIO / "sample.wav"), "-o", str(blocker), "-q")
    assert run.returncode == 1 and run.stdout == ""
    assert "Traceback" not in run.stderr and "output_dir" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1


# ---- timestamps: the same keys whether or not the VAD found speech --------------------------------

def test_paraformer_with_vad_has_the_same_keys_with_and_without_segments():
    chain = _model("paraformer_tiny", vad=True)
    (speech,) = chain.generate(read_wave("example.wav"))
    (silence,) = chain.generate(np.zeros(16000, dtype=np.float32))
    assert set(speech) == set(silence) == {"key", "text"}
    (speech,) = chain.generate(read_wave("example.wav"), pred_timestamp=True)
    (silence,) = chain.generate(np.zeros(16000, dtype=np.float32), pred_timestamp=True)
    assert set(speech) == set(silence) == {"key", "text", "timestamp"}


# ---- funasr_onnx: the same checks through its AutoModel -----------------------------------------

def test_onnx_runtime_checks_the_same_arguments(tmp_path):
    sys.path.insert(0, str(ROOT / "runtime" / "python"))
    import funasr_onnx

    folder = _model("fsmn-vad").export(output_dir=str(tmp_path / "vad"))
    model = funasr_onnx.AutoModel(model=folder, disable_pbar=True)
    wavs = [str(AUDIO / "example.wav"), None]
    for kwargs in ({"batch_size": 0}, {"batch_size": -1}, {"chunk_size": "200"}, {"output_dir": str(tmp_path / "vad" / "model.onnx")}):
        with pytest.raises(OptionError):
            model.generate(wavs, **kwargs)
    out = model.generate(wavs, batch_size=2)
    assert out[0]["value"] and set(out[1]) == {"key", "error"}
    with pytest.raises(OptionError, match="device='bogus'"):
        funasr_onnx.AutoModel(model=folder, device="bogus")
    with pytest.raises(OptionError, match="quantize='no'"):
        funasr_onnx.AutoModel(model=folder, quantize="no")
    for empty in ("", " "):
        with pytest.raises(FunASRError, match="needs model="):
            funasr_onnx.AutoModel(model=empty)
        with pytest.raises(FunASRError, match="needs model="):
            AutoModel(model=empty)


# ---- keys a list file can hold: files stay writable and the Kaldi files one line per result ---------

def test_a_key_too_long_for_a_file_name_still_writes(tmp_path):
    keys = ["é" * 200, "é" * 200 + "x", "a" * 300]
    out = tmp_path / "out"
    write_results([{"key": k, "text": k[-1]} for k in keys], out, ["json", "txt"])
    texts = sorted(p.read_text(encoding="utf-8") for p in out.glob("*.txt"))
    assert texts == ["a\n", "x\n", "é\n"]
    assert all(len(p.name.encode()) <= 255 for p in out.iterdir())


def test_keys_with_whitespace_keep_the_kaldi_files_one_line_per_result(tmp_path):
    lines = tmp_path / "k.jsonl"
    wav = str(AUDIO / "example.wav")
    lines.write_text("".join(json.dumps({"key": k, "source": wav}) + "\n" for k in ("a\nforged line", "x y", "x_y")))
    _model("fsmn-vad").generate(str(lines), output_dir=str(tmp_path / "out"))
    rows = (tmp_path / "out" / "1best_recog" / "text").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 3
    assert len({row.split(" ", 1)[0] for row in rows}) == 3
    assert all(row.split(" ", 1)[1].startswith("[[") for row in rows)


def test_an_empty_path_is_named_empty(tmp_path):
    with pytest.raises(AudioError, match="empty"):
        _model("fsmn-vad").generate("")
    run = _cli("", "-q")
    assert run.returncode == 1 and "empty" in run.stderr, run.stderr
