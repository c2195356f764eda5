"""The ``funasr`` command end to end (subprocess ``python -m funasr``) and the result writers."""
from __future__ import annotations

import json
import os
from typing import Any
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import AUDIO, CLIP, CLIP_TEXT, MODELS, ROOT, close_ms, full_disk, norm_text, parity_cases
from funasr.writers import OutputWriter, file_stem, recognised_units, srt_cues, to_srt, write_results


def _expected(case_id: str) -> dict:
    (case,) = [c for c in parity_cases(case_id) if c["id"] == case_id]
    return case["expected"][0]


def funasr(*args: str, cwd: Path = ROOT, preexec_fn: Any = None) -> subprocess.CompletedProcess:
    """Run ``python -m funasr`` with this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), HF_HUB_OFFLINE="1")
    return subprocess.run(
        [sys.executable, "-m", "funasr", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300,
        preexec_fn=preexec_fn,
    )


def _kaldi(path: Path) -> dict[str, str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return dict((line.split(" ", 1) + [""])[:2] for line in lines)


# ---- command line --------------------------------------------------------------------------


def test_files_that_cannot_be_written_are_one_error_after_every_transcript(tmp_path):
    inputs = [str(AUDIO / "example.wav"), str(AUDIO / "sample.wav")]
    run = funasr("--vad-model", "fsmn-vad", *inputs, "-o", str(tmp_path / "out"), preexec_fn=full_disk)
    assert run.returncode == 1
    assert [line.split()[0] for line in run.stdout.splitlines()] == ["example", "sample"]  # every result is shown
    assert run.stderr.strip().splitlines()[-1].startswith("funasr: error: writing under") and "File too large" in run.stderr


def test_default_transcribes_with_the_bundled_models_offline(tmp_path):
    # the README's main job: VAD -> paraformer-zh-small -> ct-punc-zh-small, nothing downloaded (HF_HUB_OFFLINE=1)
    run = funasr(str(CLIP), "-o", str(tmp_path), "--format", "json", "-q")
    assert run.returncode == 0, run.stderr
    assert run.stdout == f"clip\t{CLIP_TEXT}\n"
    result = json.loads((tmp_path / "clip.json").read_text(encoding="utf-8"))
    assert result["text"] == CLIP_TEXT and result["raw_text"] == CLIP_TEXT.replace("，", "").replace("。", "")
    # no timestamps from this model: one sentence per VAD segment, punctuated
    assert "".join(s["text"] for s in result["sentence_info"]) == CLIP_TEXT


def test_lm_options_reach_the_model(tmp_path):
    from funasr.train.ngram import train_arpa

    tokens = json.loads((MODELS / "paraformer_tiny" / "tokens.json").read_text(encoding="utf-8"))[3:-1]
    lm = train_arpa([tokens[i : i + 6] for i in range(0, len(tokens), 6)], 3, tmp_path / "lm.arpa")
    wav = str(AUDIO / "example.wav")
    greedy = funasr(wav, "--model", str(MODELS / "paraformer_tiny"), "-q")
    off = funasr(wav, "--model", str(MODELS / "paraformer_tiny"), "--lm-file", str(lm), "--lm-weight", "0", "-q")
    on = funasr(wav, "--model", str(MODELS / "paraformer_tiny"), "--lm-file", str(lm), "--lm-weight", "2", "--beam-size", "4", "-q")
    assert greedy.returncode == off.returncode == on.returncode == 0, on.stderr
    assert off.stdout == greedy.stdout != on.stdout


def test_vad_model_alone_reports_segments_in_every_format(tmp_path):
    out = tmp_path / "out"
    run = funasr(str(AUDIO / "example.wav"), "--vad-model", "fsmn-vad", "-o", str(out), "--format", "json,srt,txt")
    assert run.returncode == 0, run.stderr
    want = _expected("vad/example")["value"]
    key, value = run.stdout.strip().split("\t")
    assert key == "example" and close_ms(json.loads(value), want)
    assert close_ms(json.loads(_kaldi(out / "1best_recog" / "text")["example"]), want)
    assert close_ms(json.loads((out / "example.json").read_text(encoding="utf-8"))["value"], want)
    assert (out / "example.srt").read_text(encoding="utf-8").count(" --> ") == len(want)
    assert len((out / "example.txt").read_text(encoding="utf-8").splitlines()) == len(want)


def test_batch_goes_on_past_bad_inputs_and_names_them(tmp_path):
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(AUDIO / "sample.wav", folder / "sub" / "sample.wav")
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage, not audio" * 3)
    (folder / "notes.md").write_text("not audio")
    (tmp_path / "empty").mkdir()
    out = tmp_path / "out"
    run = funasr(str(AUDIO / "example.wav"), str(folder), str(tmp_path / "missing.wav"), str(tmp_path / "empty"),
                 "--vad-model", "fsmn-vad", "-o", str(out))
    assert run.returncode == 1
    assert "3 input(s) failed" in run.stderr
    assert "corrupt.wav" in run.stderr and "missing.wav" in run.stderr and "empty" in run.stderr
    texts = _kaldi(out / "1best_recog" / "text")
    assert set(texts) == {"example", "sample"}
    assert close_ms(json.loads(texts["sample"]), _expected("vad/sample")["value"])
    assert sorted(line.split("\t")[0] for line in run.stdout.splitlines()) == ["example", "sample"]


def test_list_file_keys_name_the_results(tmp_path):
    scp = tmp_path / "wav.scp"
    scp.write_text(f"utt_a {AUDIO / 'example.wav'}\nutt_b {AUDIO / 'pub_concat.wav'}\n", encoding="utf-8")
    out = tmp_path / "out"
    run = funasr(str(scp), "--vad-model", "fsmn-vad", "-o", str(out), "--format", "json", "-q")
    assert run.returncode == 0, run.stderr
    assert run.stderr == ""  # --quiet: no progress bar
    texts = _kaldi(out / "1best_recog" / "text")
    assert list(texts) == ["utt_a", "utt_b"]
    assert close_ms(json.loads(texts["utt_b"]), _expected("vad/pub_concat")["value"])
    assert json.loads((out / "utt_b.json").read_text(encoding="utf-8"))["key"] == "utt_b"


def test_asr_with_vad_and_punctuation_writes_sentences(tmp_path):
    out = tmp_path / "out"
    run = funasr(
        str(AUDIO / "pub_concat.wav"),
        "--model", str(MODELS / "bicif_paraformer_tiny"),
        "--vad-model", "fsmn-vad",
        "--punc-model", str(MODELS / "ct_punc_tiny"),
        "--batch-size-s", "60",
        "-o", str(out), "--format", "json,srt,txt",
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    want = _expected("pipe/bicif_punc_sent/pub_concat")
    assert norm_text(_kaldi(out / "1best_recog" / "text")["pub_concat"]) == norm_text(want["text"])
    assert close_ms(json.loads(_kaldi(out / "1best_recog" / "timestamp")["pub_concat"]), want["timestamp"])
    assert len(_kaldi(out / "1best_recog" / "token")["pub_concat"].split()) == len(want["timestamp"])
    srt = (out / "pub_concat.srt").read_text(encoding="utf-8")
    assert srt.count(" --> ") == len(want["sentence_info"])
    assert norm_text((out / "pub_concat.txt").read_text(encoding="utf-8")) == norm_text(want["text"])


def test_punctuation_model_takes_texts():
    run = funasr("--model", str(MODELS / "ct_punc_tiny"), "今天天气不错我们去学习", "-q")
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip().split("\t")[1] == _expected("punc/ct_punc_tiny/0")["text"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["a.wav", "--format", "json"], "--format needs --output-dir"),
        (["a.wav", "-o", "x", "--format", "json,doc"], "unknown --format doc"),
        (["a.wav", "--punc-model", "ct-punc"], "--model"),
    ],
)
def test_usage_errors(args, message):
    run = funasr(*args)
    assert run.returncode == 2 and message in run.stderr


def test_unknown_model_fails_with_its_reason():
    run = funasr("a.wav", "--model", "no-such-model")
    assert run.returncode == 1 and "no-such-model" in run.stderr


@pytest.mark.parametrize("module", sorted(p.stem for p in (ROOT / "funasr" / "bin").glob("*.py") if p.stem not in ("__init__", "cli")))
def test_every_command_module_runs_with_python_m(module):
    """The recipes call the commands as ``python -m funasr.bin.<name>``: each must run its main, not import and exit."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", f"funasr.bin.{module}", "--help"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "usage:" in run.stdout, (run.stdout, run.stderr)


def test_infer_sh_writes_kaldi_text_and_the_formats(tmp_path):
    env = dict(os.environ, model="paraformer-zh-small", punc_model="ct-punc-zh-small", HF_HUB_OFFLINE="1")
    run = subprocess.run(["bash", str(ROOT / "egs" / "infer.sh"), str(CLIP), str(tmp_path / "out")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (tmp_path / "out" / "1best_recog" / "text").read_text(encoding="utf-8") == f"clip {CLIP_TEXT}\n"
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"1best_recog", "clip.json", "clip.srt", "clip.txt"}


def test_help_says_what_runs_by_default():
    run = funasr("--help")
    assert run.returncode == 0 and "fsmn-vad" in run.stdout


# ---- writers -------------------------------------------------------------------------------


def test_kaldi_files(tmp_path):
    results = [
        {"key": "a", "text": "欢 迎 hello world", "timestamp": [[0, 100], [100, 200], [300, 500], [500, 700]]},
        {"key": "b", "text": "你好，世界。", "raw_text": "你 好 世 界"},
        {"key": "bad", "error": "cannot decode"},
        {"key": "v", "value": [[np.int64(740), 4460], [4740, 6660]]},
    ]
    write_results(results, tmp_path)
    kaldi = tmp_path / "1best_recog"
    assert (kaldi / "text").read_text(encoding="utf-8").splitlines() == [
        "a 欢 迎 hello world",
        "b 你好，世界。",
        "v [[740, 4460], [4740, 6660]]",
    ]
    assert (kaldi / "token").read_text(encoding="utf-8").splitlines() == ["a 欢 迎 hello world", "b 你 好 世 界"]
    assert (kaldi / "timestamp").read_text(encoding="utf-8").splitlines() == ["a [[0, 100], [100, 200], [300, 500], [500, 700]]"]


def test_per_input_files(tmp_path):
    sentences = [{"text": "好的。", "start": 0, "end": 200, "timestamp": [[0, 100], [100, 200]]}]
    result = {"key": "dir/x y", "text": "好的。", "timestamp": [[0, 100], [100, 200]], "punc_array": np.array([1, 3]),
              "sentence_info": sentences}
    with OutputWriter(tmp_path, ["json", "txt", "srt"]) as writer:
        written = writer.write(result)
    assert sorted(p.name for p in written) == ["dir_x_y.json", "dir_x_y.srt", "dir_x_y.txt"]
    saved = json.loads((tmp_path / "dir_x_y.json").read_text(encoding="utf-8"))
    assert saved == {**result, "punc_array": [1, 3]}
    assert (tmp_path / "dir_x_y.txt").read_text(encoding="utf-8") == "好的。\n"


def test_srt_without_timing_is_skipped(tmp_path):
    with OutputWriter(tmp_path, ["srt"]) as writer:
        assert writer.write({"key": "t", "text": "你好"}) == []


def test_srt_from_sentences():
    result = {
        "key": "s",
        "text": "你好，世界。",
        "sentence_info": [{"text": "你好，", "start": 890, "end": 1430}, {"text": "世界。", "start": 3_600_500, "end": 3_601_000}],
    }
    assert to_srt(result) == (
        "1\n00:00:00,890 --> 00:00:01,430\n你好，\n\n2\n01:00:00,500 --> 01:00:01,000\n世界。\n"
    )


def test_srt_from_timestamps_splits_at_pauses():
    result = {"key": "t", "text": "欢 迎 大 家 hello", "timestamp": [[0, 100], [100, 200], [900, 1000], [1000, 1100], [1100, 1500]]}
    assert srt_cues(result) == [(0, 200, "欢迎"), (900, 1500, "大家 hello")]
    # units that do not line up with the timestamps give one cue over the whole span
    assert srt_cues({"text": "欢迎。", "timestamp": [[0, 100]]}) == [(0, 100, "欢迎。")]


def test_recognised_units_and_file_names():
    assert recognised_units("你好，世界。 Hello world. it's") == ["你", "好", "世", "界", "Hello", "world", "it's"]
    assert file_stem("../a/b c") == "_a_b_c"
    assert file_stem("会议_01") == "会议_01"
