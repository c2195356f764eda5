"""funasr-batch: Ray Data actor pools or local worker processes over a folder of files, one JSONL line per file, resumable, crash-safe."""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

from conftest import AUDIO, MODELS, RUNTIME, auto, exported
from funasr.batch import LocalPool, ray_available, read_manifest, transcribe_batch
from funasr.bin.batch import main
from funasr.errors import ModelNotFoundError, OptionError

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


def check_complete(out: Path, files: dict[str, Path], uri: bool = False) -> None:
    """One line per file; the clips as AutoModel.generate transcribes them, errors for the bad ones (``uri``: sources as file://)."""
    got = records(out)
    assert sorted(r["key"] for r in got) == sorted(files)
    model = auto("paraformer_tiny")
    for r in got:
        if r["key"] in ("empty", "corrupt"):
            assert r["error"] and "text" not in r
            continue
        assert "error" not in r
        assert r["text"] == model.generate(input=str(files[r["key"]]))[0]["text"]
        assert r["source"] == (files[r["key"]].as_uri() if uri else str(files[r["key"]]))
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


def test_onnx_engine_workers(tmp_path, export_root, monkeypatch):
    monkeypatch.syspath_prepend(str(RUNTIME))  # funasr_onnx, as `pip install ./runtime/python` provides it
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
    with pytest.raises(ModelNotFoundError, match="nonexistent"):
        transcribe_batch(tmp_path / "in", tmp_path / "out", str(tmp_path / "nonexistent"), backend="local")
    with pytest.raises(OptionError, match="no-such-scheme://"):
        transcribe_batch("no-such-scheme://x/", tmp_path / "out", MODEL)
    with pytest.raises(OptionError, match="no such file or folder"):
        transcribe_batch((tmp_path / "missing").as_uri(), tmp_path / "out", MODEL)
    if not ray_available():
        with pytest.raises(OptionError, match="pip install 'funasr\\[ray\\]'"):
            transcribe_batch(tmp_path / "in", tmp_path / "out", MODEL, address="auto")
    assert not (tmp_path / "out").exists()


def test_manifest_is_longest_first(tmp_path):
    make_folder(tmp_path, 6)
    jobs = read_manifest(tmp_path)
    assert [j.duration for j in jobs] == sorted((j.duration for j in jobs), reverse=True)
    assert len({j.key for j in jobs}) == 8
    # the same folder as a URI (listed through pyarrow's file system, as Ray Data lists s3:// or gs://): ordered by size
    uris = read_manifest(tmp_path.as_uri())
    assert sorted(j.source for j in uris) == sorted(Path(j.source).as_uri() for j in jobs)
    assert [j.size for j in uris] == sorted((j.size for j in uris), reverse=True) and all(j.duration == 0 for j in uris)


def test_without_ray_the_local_pool_reads_uris(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # Ray not installed: the default backend is the local pool
    assert not ray_available()
    files = make_folder(tmp_path / "in", 3)
    summary = transcribe_batch((tmp_path / "in").as_uri(), tmp_path / "out", MODEL, progress=False)
    assert (summary.transcribed, summary.failed) == (3, 2)
    check_complete(tmp_path / "out", files, uri=True)


def ray_workers() -> list[int]:
    """Process ids of the Ray Data actors transcribing (their process title names the callable class)."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            title = (proc / "cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::MapWorker(MapBatches(Transcriber))") and not title.endswith(b"__init__"):
            pids.append(int(proc.name))
    return pids


@pytest.fixture(scope="module")
def local_ray():
    """A local Ray instance with 2 CPUs, shut down after the module."""
    if not ray_available():
        pytest.skip("Ray is not installed (pip install 'funasr[ray]')")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


def test_ray_data_actor_pool_over_uris(tmp_path, local_ray):
    files = make_folder(tmp_path / "in", 4)
    summary = transcribe_batch((tmp_path / "in").as_uri(), tmp_path / "out", MODEL, workers=2, backend="ray", progress=False)
    assert (summary.transcribed, summary.failed) == (4, 2)
    check_complete(tmp_path / "out", files, uri=True)


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
def test_local_pool_records_a_file_that_killed_two_workers(tmp_path):
    files = make_folder(tmp_path / "in", 4)
    victim: list[str] = []

    def kill_twice(pool: LocalPool) -> None:
        def watch() -> None:
            while len(victim) < 2:
                held = [(w, job) for w, job in list(pool.holding.items()) if job is not None and w in pool.ready]
                held = [(w, job) for w, job in held if not victim or job.key == victim[0]]
                if held:
                    wid, job = held[0]
                    os.kill(pool.procs[wid].pid, signal.SIGKILL)
                    victim.append(job.key)
                    while wid in pool.procs:
                        time.sleep(0.01)
                time.sleep(0.01)

        threading.Thread(target=watch, daemon=True).start()

    summary = transcribe_batch(tmp_path / "in", tmp_path / "out", MODEL, workers=2, backend="local", progress=False, started=kill_twice)
    assert victim[0] == victim[1] and (summary.transcribed, summary.failed) == (3, 3)
    got = {r["key"]: r for r in records(tmp_path / "out")}
    assert sorted(got) == sorted(files) and "died 2 times" in got[victim[0]]["error"]


@pytest.mark.slow
def test_ray_fifty_files_worker_killed_then_interrupted_and_resumed(tmp_path, local_ray):
    files = make_folder(tmp_path / "in", 48)
    out = tmp_path / "out"
    killed: list[int] = []

    def kill_one_busy_worker() -> None:
        while not (out / "results.jsonl").is_file() or len(records(out)) < 5:
            time.sleep(0.05)
        pid = ray_workers()[0]
        killed.append(pid)
        os.kill(pid, signal.SIGKILL)

    threading.Thread(target=kill_one_busy_worker, daemon=True).start()
    summary = transcribe_batch(tmp_path / "in", out, MODEL, workers=2, backend="ray", progress=False)
    assert killed and (summary.transcribed, summary.failed) == (48, 2)
    check_complete(out, files)
    # an interrupted run: the last 20 lines never written, one half written; the rerun does those 20 and the 2 failed ones
    lines = (out / "results.jsonl").read_text(encoding="utf-8").splitlines()
    (out / "results.jsonl").write_text("\n".join(lines[:30]) + "\n" + lines[30][:25], encoding="utf-8")
    done = {json.loads(line)["key"] for line in lines[:30] if "error" not in json.loads(line)}
    summary = transcribe_batch(tmp_path / "in", out, MODEL, workers=2, backend="ray", progress=False)
    assert (summary.skipped, summary.transcribed + summary.failed) == (len(done), 50 - len(done))
    check_complete(out, files)
