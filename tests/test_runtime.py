"""The onnxruntime runtime (runtime/python, package funasr_onnx): parity without torch, threads, options."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from functools import lru_cache
from pathlib import Path

import pytest
import soundfile as sf

from conftest import ALL_MODELS, AUDIO, PARITY, ROOT, RUNTIME, TOLERANCE_MS, auto, close_ms, exported, model_path, norm_text, parity_cases

sys.path.insert(0, str(RUNTIME))

import funasr_onnx  # noqa: E402
from funasr_onnx.int8 import cpu_has_vnni, int8_plan, narrow_weights, session_source, signed_weights  # noqa: E402
from funasr.auto_model import AutoModel  # noqa: E402
from funasr.errors import ModelNotFoundError, OptionError  # noqa: E402

CASES = parity_cases("")
STREAM_CHUNKS_MS = (200, 600)

# Runs the jobs in a process where ``import torch`` fails, as in an environment without torch.
WORKER = r"""
import json, sys
sys.modules["torch"] = None  # from here on `import torch` raises ModuleNotFoundError
repo, runtime, jobs_file, out_file = sys.argv[1:]
sys.path[:0] = [runtime, repo]
import soundfile as sf
import funasr_onnx

models, out = {}, {}
for job in json.load(open(jobs_file, encoding="utf-8")):
    key = json.dumps(job["init"], sort_keys=True)
    if key not in models:
        models[key] = funasr_onnx.AutoModel(**job["init"], disable_pbar=True)
    model, data, kwargs = models[key], job["input"], dict(job["generate"])
    if isinstance(data, dict):
        data, kwargs["fs"] = sf.read(data["array_from"], dtype="float32")
    if "stream_ms" in job:
        step = job["stream_ms"] * 16
        chunks = [data[i : i + step] for i in range(0, len(data), step)]
        cache = {}
        out[job["id"]] = [
            model.generate(c, cache=cache, is_final=i == len(chunks) - 1, chunk_size=job["stream_ms"])[0]["value"]
            for i, c in enumerate(chunks)
        ]
    else:
        out[job["id"]] = model.generate(data, **kwargs)
assert sys.modules["torch"] is None, "torch was imported"
json.dump(out, open(out_file, "w", encoding="utf-8"), ensure_ascii=False)
"""


def _resolve_input(data):
    if isinstance(data, dict):
        return {"array_from": str(PARITY / data["array_from"])}
    if isinstance(data, list):
        return [str(PARITY / d) for d in data]
    return str(PARITY / data) if (PARITY / data).suffix == ".wav" else data


def _name(rel: str) -> str:
    return Path(rel).name


@pytest.fixture(scope="module")
def export_dirs(export_root) -> dict[str, str]:
    return {name: str(exported(export_root, name)) for name in ALL_MODELS}


@pytest.fixture(scope="module")
def torch_free_results(export_dirs, tmp_path_factory) -> dict:
    """Every parity case (and streaming VAD) run by funasr_onnx in a process without torch."""
    jobs = []
    for case in CASES:
        init = {k: export_dirs[_name(v)] if k.endswith("model") else v for k, v in case["init"].items()}
        jobs.append({"id": case["id"], "init": init, "input": _resolve_input(case["input"]), "generate": case["generate"]})
    for ms in STREAM_CHUNKS_MS:
        jobs.append({"id": f"stream/{ms}", "init": {"model": export_dirs["fsmn-vad"]}, "input": {"array_from": str(AUDIO / "pub_concat.wav")}, "generate": {}, "stream_ms": ms})
    folder = tmp_path_factory.mktemp("torch_free")
    (folder / "jobs.json").write_text(json.dumps(jobs, ensure_ascii=False), encoding="utf-8")
    args = [sys.executable, "-c", WORKER, str(ROOT), str(RUNTIME), str(folder / "jobs.json"), str(folder / "out.json")]
    run = subprocess.run(args, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads((folder / "out.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def _torch_model(init_json: str) -> AutoModel:
    init = {k: str(model_path(_name(v))) if k.endswith("model") else v for k, v in json.loads(init_json).items()}
    return AutoModel(**init, disable_pbar=True)


def _torch_output(case: dict) -> list:
    model = _torch_model(json.dumps(case["init"], sort_keys=True))
    data, kwargs = _resolve_input(case["input"]), dict(case["generate"])
    if isinstance(data, dict):
        data, kwargs["fs"] = sf.read(data["array_from"], dtype="float32")
    return model.generate(data, **kwargs)


def _assert_matches_reference(got: dict, want: dict) -> None:
    """The comparison of tests/fixtures/parity/README.md (keys of array and text inputs are ours: content hashes, not random)."""
    assert got["key"] == want["key"] or want["key"].startswith("rand_key_")
    if "value" in want:
        assert close_ms(got["value"], want["value"])
    if "text" in want:
        assert norm_text(got["text"]) == norm_text(want["text"])
    if "timestamp" in want:
        assert close_ms(got["timestamp"], want["timestamp"])
    if "punc_array" in want:
        assert list(got["punc_array"]) == list(want["punc_array"])
    if "sentence_info" in want:
        assert len(got["sentence_info"]) == len(want["sentence_info"])
        for g, w in zip(got["sentence_info"], want["sentence_info"]):
            assert abs(g["start"] - w["start"]) <= TOLERANCE_MS and abs(g["end"] - w["end"]) <= TOLERANCE_MS


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_torch_free_runtime_parity(torch_free_results, case):
    got = torch_free_results[case["id"]]
    if not case["id"].startswith("pipe/"):  # (the chains are built of these; running them on PyTorch is slow)
        assert got == _torch_output(case)  # the same dicts as funasr on PyTorch
    assert len(got) == len(case["expected"])
    for g, w in zip(got, case["expected"]):
        _assert_matches_reference(g, w)


@pytest.mark.parametrize("chunk_ms", STREAM_CHUNKS_MS)
def test_torch_free_streaming_vad(torch_free_results, chunk_ms):
    expected = json.loads((PARITY / "vad_streaming.json").read_text())["per_chunk"][str(chunk_ms)]
    got = torch_free_results[f"stream/{chunk_ms}"]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert len(g) == len(e) and all(abs(a - b) <= TOLERANCE_MS for s, t in zip(g, e) for a, b in zip(s, t) if -1 not in (a, b))


def test_int8_chain_runs(export_dirs):
    model = funasr_onnx.AutoModel(
        model=export_dirs["bicif_paraformer_tiny"], vad_model=export_dirs["fsmn-vad"],
        punc_model=export_dirs["ct_punc_tiny"], quantize=True, disable_pbar=True,
    )
    assert all(g.path.name == "model_quant.onnx" for g in (model.task.net.graph, model.vad_task.net.graph, model.punc_task.net.graph))
    (out,) = model.generate(str(AUDIO / "pub_concat.wav"), sentence_timestamp=True, return_raw_text=True)
    assert out["key"] == "pub_concat" and out["text"] and out["sentence_info"]
    assert len(out["timestamp"]) == len(out["raw_text"].split())


@pytest.mark.parametrize("name", ["bicif_paraformer_tiny", "ct_punc_tiny"])
def test_int8_graphs_run_with_signed_weights_and_the_same_outputs(export_dirs, name, tmp_path, monkeypatch):
    import numpy as np
    import onnx
    import onnxruntime as ort

    path = Path(export_dirs[name]) / "model_quant.onnx"
    cache = tmp_path / "cache"
    monkeypatch.setenv("FUNASR_ONNX_CACHE", str(cache))
    model = onnx.load(str(path))
    assert signed_weights(model) == sum(n.op_type == "MatMulInteger" for n in model.graph.node) > 0
    weights = {t.name: t.data_type for t in model.graph.initializer}
    assert all(weights[n.input[1]] == weights[n.input[3]] == onnx.TensorProto.INT8 for n in model.graph.node if n.op_type == "MatMulInteger")
    feed = _int8_feed(name)
    original = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)
    signed = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)
    if cpu_has_vnni():  # u8 x s8 products add up in 32 bits: the very same numbers
        assert all(np.array_equal(a, b) for a, b in zip(original, signed))
    # the graph a CPU gets: shifted (VNNI), 7-bit (other x86), the file (others); on a GPU always the file
    shifted, narrowed = (session_source(path, on_cpu=True, plan=p) for p in ("shift", "narrow"))
    assert Path(shifted).parent == Path(narrowed).parent == cache and shifted != narrowed
    assert all(np.array_equal(a, b) for a, b in zip(signed, ort.InferenceSession(shifted).run(None, feed)))
    assert session_source(path, on_cpu=True, plan="shift") == shifted  # written once, then read
    assert session_source(path, on_cpu=True, plan="keep") == session_source(path, on_cpu=False) == str(path)


def _int8_feed(name: str) -> dict:
    import numpy as np

    if name.startswith("ct_punc"):
        return {"inputs": np.arange(1, 24, dtype=np.int32)[None], "text_lengths": np.array([23], dtype=np.int32)}
    feats, lens = auto(name).task.frontend([sf.read(AUDIO / "example.wav", dtype="float32")[0]])
    return {"speech": feats, "speech_lengths": lens.astype(np.int32)}


@pytest.mark.parametrize("name", ["paraformer_tiny", "bicif_paraformer_tiny", "ct_punc_tiny"])
def test_int8_narrowed_weights_cannot_saturate_and_keep_the_outputs(export_dirs, name):
    """The graph CPUs without VNNI get: every weight within [-64, 64], logits close to fp32, the same tokens."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    folder = Path(export_dirs[name])
    model = onnx.load(str(folder / "model_quant.onnx"))
    matmuls = [n for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert narrow_weights(model) == len(matmuls) > 0
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for n in matmuls:  # 255 * (64 + 64) < 32768: no pair of u8 x s8 products saturates a 16-bit sum
        assert inits[n.input[1]].dtype == np.int8 and np.abs(inits[n.input[1]].astype(int)).max() <= 64
        assert not inits[n.input[3]].any()
    feed = _int8_feed(name)
    fp32 = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    narrow = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    uint8 = ort.InferenceSession(str(folder / "model_quant.onnx"), providers=["CPUExecutionProvider"]).run(None, feed)[0]
    cosine = float((fp32 * narrow).sum() / np.linalg.norm(fp32) / np.linalg.norm(narrow))
    assert cosine >= 0.99
    agree = np.mean(fp32.argmax(-1) == narrow.argmax(-1))
    assert agree >= np.mean(fp32.argmax(-1) == uint8.argmax(-1)) - 0.05 and agree >= 0.8


def test_vnni_is_read_from_the_cpu_flags(tmp_path):
    import platform

    old, new = tmp_path / "old", tmp_path / "new"
    old.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    new.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert not cpu_has_vnni(old) and not cpu_has_vnni(tmp_path / "missing")
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    assert cpu_has_vnni(new) == x86
    assert (int8_plan(new), int8_plan(old)) == (("shift", "narrow") if x86 else ("keep", "keep"))
    assert int8_plan(tmp_path / "missing") == "keep"


def test_int8_plan_keep_runs_the_file_as_it_is(export_dirs, monkeypatch, tmp_path):
    folder = export_dirs["paraformer_tiny"]
    monkeypatch.setenv("FUNASR_ONNX_CACHE", str(tmp_path / "cache"))  # where rewritten copies would go
    monkeypatch.setenv("FUNASR_ONNX_INT8", "keep")
    assert int8_plan() == "keep"
    wave = str(AUDIO / "example.wav")
    kept = funasr_onnx.AutoModel(model=folder, quantize=True, intra_op_num_threads=1, disable_pbar=True).generate(input=wave)
    assert not (tmp_path / "cache").exists() and kept[0]["text"]
    monkeypatch.setenv("FUNASR_ONNX_INT8", "auto")
    funasr_onnx.AutoModel(model=folder, quantize=True, intra_op_num_threads=1, disable_pbar=True)
    assert (tmp_path / "cache").exists() == (int8_plan() != "keep")
    monkeypatch.setenv("FUNASR_ONNX_INT8", "fast")
    with pytest.raises(OptionError, match="FUNASR_ONNX_INT8='fast'.*'keep'"):
        funasr_onnx.AutoModel(model=folder, quantize=True, disable_pbar=True)
    with pytest.raises(OptionError, match="FUNASR_ONNX_INT8"):
        session_source(Path(folder) / "model_quant.onnx", on_cpu=True)


def test_same_results_from_several_threads(export_dirs):
    model = funasr_onnx.AutoModel(model=export_dirs["seaco_paraformer_tiny"], intra_op_num_threads=1, disable_pbar=True)
    jobs = [(str(AUDIO / f"{n}.wav"), h) for n in ("example", "sample") for h in (None, "今天 朋友", "电话")]
    want = [model.generate(w, hotword=h) for w, h in jobs]
    got: dict[int, list] = {}

    def work(i: int) -> None:
        for k in range(len(jobs)):
            j = (i + k) % len(jobs)
            got[(i, j)] = model.generate(jobs[j][0], hotword=jobs[j][1])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 4 * len(jobs)
    assert all(out == want[j] for (_, j), out in got.items())


def test_session_settings(export_dirs):
    import onnxruntime as ort

    model = funasr_onnx.AutoModel(model=export_dirs["ct_punc_tiny"], intra_op_num_threads=2, inter_op_num_threads=1)
    opts = model.task.net.graph.session.get_session_options()
    assert opts.intra_op_num_threads == 2 and opts.inter_op_num_threads == 1
    # idle pool threads sleep instead of spinning: a model's graphs run in turn, each with its own pool
    assert opts.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    mine = ort.SessionOptions()
    mine.intra_op_num_threads = 3
    punc = funasr_onnx.CTTransformer(export_dirs["ct_punc_tiny"], session_options=mine)
    assert punc.net.graph.session.get_session_options().intra_op_num_threads == 3
    assert model.generate("今天天气不错")[0]["text"] == punc([funasr_onnx.TextItem("k", "今天天气不错")])[0]["text"]


def test_vad_kwargs_configure_the_vad(export_dirs):
    model = funasr_onnx.AutoModel(model=export_dirs["fsmn-vad"], max_single_segment_time=2000)
    (out,) = model.generate(str(AUDIO / "pub_concat.wav"))
    (want,) = [c for c in CASES if c["id"] == "vad/maxseg2s"]
    assert close_ms(out["value"], want["expected"][0]["value"])


def test_folder_without_graphs_says_how_to_export():
    with pytest.raises(ModelNotFoundError, match="funasr-export"):
        funasr_onnx.AutoModel(model=str(model_path("paraformer_tiny")))


def test_runtime_package_metadata():
    import tomllib

    project = tomllib.loads((RUNTIME / "pyproject.toml").read_text())["project"]
    assert project["name"] == "funasr-onnx"
    deps = [re.split(r"[<>=\[ ]", d)[0] for d in project["dependencies"]]
    assert "funasr" in deps and "onnxruntime" in deps and "torch" not in deps
    assert not any(re.search(r"^\s*(import|from)\s+torch\b", p.read_text(), re.M) for p in (RUNTIME / "funasr_onnx").glob("*.py"))


HEAP_WORKER = r"""
import ctypes, sys
sys.path[:0] = sys.argv[1:3]
from funasr_onnx.session import release_freed_heap

def rss_mb():
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
# what parsing a graph leaves: mid-size blocks freed between blocks still in use, so glibc keeps their pages
blocks = [libc.malloc(64 * 1024) for _ in range(6400)]
for b in blocks:
    ctypes.memset(b, 1, 64 * 1024)
for b in blocks[::2]:
    libc.free(b)
before = rss_mb()
released = release_freed_heap()
print(released, before - rss_mb())
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads Linux's /proc")
def test_freed_heap_goes_back_to_the_os_after_loading():
    # 200 MB freed inside the heap stays resident until the trim that ends a graph load
    out = subprocess.run([sys.executable, "-c", HEAP_WORKER, str(RUNTIME), str(ROOT)], capture_output=True, text=True, check=True)
    released, dropped_mb = out.stdout.split()
    assert released == "True" and float(dropped_mb) > 150
