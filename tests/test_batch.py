"""funasr-batch: worker processes over a folder of files, one JSONL line per file, resumable, crash-safe."""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from conftest import AUDIO, MODELS, auto, exported
from funasr.batch import LocalPool, read_manifest, transcribe_batch
from funasr.bin.batch import main
from funasr.errors import OptionError

MODEL = str(MODELS / "paraformer_tiny")


def make_folder(root: Path, n: int) -> dict[str, Path]:
    """``n`` short clips (0.5-2.5 s, some in a subfolder) plus an empty and a corrupt .wav; key -> path."""
    x, fs = sf.read(AUDIO / "example.wav", dtype="float32")
    files = {}
    for i in range(n):
        path = root / ("sub" if i % 3 == 0 else "") / f"clip{i:02d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        start = (i * 3000) % (len(x) - 40000)
        sf.write(path, x[start : start + 8000 + (i % 5) * 8000], fs)
        files[path.stem] = path
    (root / "empty.wav").write_bytes(b"")
    (root / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(300))
    files.update(empty=root / "empty.wav", corrupt=root / "corrupt.wav")
    return files


def records(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "results.jsonl").read_text(encoding="utf-8").splitlines()]


def check_complete(out: Path, files: dict[str, Path]) -> None:
    """One line per file; the clips as AutoModel.generate transcribes them, errors for the bad ones."""
    got = records(out)
    assert sorted(r["key"] for r in got) == sorted(files)
    model = auto("paraformer_tiny")
    for r in got:
        if r["key"] in ("empty", "corrupt"):
            assert r["error"] and "text" not in r
            continue
        assert "error" not in r
        assert r["text"] == model.generate(input=str(files[r["key"]]))[0]["text"]
        assert r["source"] == str(files[r["key"]])
        assert r["duration"] == pytest.approx(sf.info(files[r["key"]]).duration, abs=1e-3)
        assert r["processing_time"] >= 0


def test_folder_transcribed_then_resumed(tmp_path, capsys):
    files = make_folder(tmp_path / "in", 6)
    out = tmp_path / "out"
    summary = transcribe_batch(tmp_path / "in", out, MODEL, workers=2, formats="jsonl,txt", backend="local", progress=False)
    assert (summary.total, summary.transcribed, summary.failed, summary.skipped) == (8, 6, 2, 0)
    check_complete(out, files)
    assert (out / "clip01.txt").read_text(encoding="utf-8").strip() == next(r["text"] for r in records(out) if r["key"] == "clip01")
    # an interrupted run: two lines lost, one half written; the rerun (the command line) redoes them and the failed ones
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    keep = [line for line in lines if json.loads(line)["key"] not in ("clip02", "clip04")]
    (out / "results.jsonl").write_text("\n".join(keep) + "\n" + lines[0][:20], encoding="utf-8")
    assert main([str(tmp_path / "in"), str(out), "--model", MODEL, "--backend", "local", "-q"]) == 1  # the bad files still fail
    assert "2 transcribed, 4 already done, 2 failed" in capsys.readouterr().err
    check_complete(out, files)
    # a manifest of the good files, all done already: nothing runs, nothing is written twice
    scp = tmp_path / "wav.scp"
    scp.write_text("".join(f"{k} {p}\n" for k, p in files.items() if k not in ("empty", "corrupt")), encoding="utf-8")
    assert main([str(scp), str(out), "--model", MODEL, "-q"]) == 0
    assert "6 already done" in capsys.readouterr().err
    check_complete(out, files)


def test_onnx_engine_workers(tmp_path, export_root):
    files = make_folder(tmp_path / "in", 2)
    summary = transcribe_batch(tmp_path / "in", tmp_path / "out", str(exported(export_root, "paraformer_tiny")), engine="onnx",
                               backend="local", progress=False)
    assert (summary.transcribed, summary.failed) == (2, 2)
    check_complete(tmp_path / "out", files)


def test_bad_arguments_fail_before_work(tmp_path):
    (tmp_path / "in").mkdir()
    with pytest.raises(OptionError, match="no audio files"):
        transcribe_batch(tmp_path / "in", tmp_path / "out", MODEL)
    make_folder(tmp_path / "in", 1)
    with pytest.raises(OptionError, match="engine"):
        transcribe_batch(tmp_path / "in", tmp_path / "out", MODEL, engine="tf")
    with pytest.raises(OptionError, match="workers"):
        transcribe_batch(tmp_path / "in", tmp_path / "out", MODEL, workers=0)
    with pytest.raises(OptionError, match="format"):
        transcribe_batch(tmp_path / "in", tmp_path / "out", MODEL, formats="docx")
    with pytest.raises(OptionError, match="Ray backend"):
        transcribe_batch(tmp_path / "in", tmp_path / "out", MODEL, backend="local", gpus_per_worker=1)
    if importlib.util.find_spec("ray") is None:
        with pytest.raises(OptionError, match="pip install 'funasr\\[ray\\]'"):
            transcribe_batch(tmp_path / "in", tmp_path / "out", MODEL, address="auto")
    assert not (tmp_path / "out").exists()


def test_manifest_is_longest_first(tmp_path):
    make_folder(tmp_path, 6)
    jobs = read_manifest(tmp_path)
    assert [j.duration for j in jobs] == sorted((j.duration for j in jobs), reverse=True)
    assert len({j.key for j in jobs}) == 8


@pytest.mark.slow
def test_fifty_files_with_a_worker_killed_mid_run(tmp_path):
    files = make_folder(tmp_path / "in", 48)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_one_busy_worker(pool: LocalPool) -> None:
        def watch() -> None:
            while not (out / "results.jsonl").is_file() or len(records(out)) < 5:
                time.sleep(0.05)
            wid = next(w for w, job in pool.holding.items() if job is not None)
            killed.append(pool.procs[wid].pid)
            os.kill(pool.procs[wid].pid, signal.SIGKILL)

        threading.Thread(target=watch, daemon=True).start()

    summary = transcribe_batch(tmp_path / "in", out, MODEL, workers=2, backend="local", progress=False, started=kill_one_busy_worker)
    assert killed and summary.transcribed == 48 and summary.failed == 2
    check_complete(out, files)


@pytest.mark.slow
def test_ray_actors_with_one_killed_then_resumed(tmp_path):
    ray = pytest.importorskip("ray")
    files = make_folder(tmp_path / "in", 10)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_one_busy_actor(pool) -> None:
        def watch() -> None:
            while not (out / "results.jsonl").is_file() or len(records(out)) < 2:
                time.sleep(0.05)
            actor = next(a for a, job in pool.holding.items() if job is not None and a in pool.pid_of)
            killed.append(pool.pid_of[actor])
            os.kill(pool.pid_of[actor], signal.SIGKILL)

        threading.Thread(target=watch, daemon=True).start()

    try:
        summary = transcribe_batch(tmp_path / "in", out, MODEL, workers=2, backend="ray", progress=False, started=kill_one_busy_actor)
        assert killed and (summary.transcribed, summary.failed) == (10, 2)
        check_complete(out, files)
        lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
        (out / "results.jsonl").write_text("\n".join(lines[:5]) + "\n", encoding="utf-8")
        summary = transcribe_batch(tmp_path / "in", out, MODEL, workers=2, backend="ray", progress=False)
        assert summary.skipped + summary.transcribed + summary.failed == 12 and summary.skipped >= 3
        check_complete(out, files)
    finally:
        ray.shutdown()
