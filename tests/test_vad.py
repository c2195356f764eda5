"""FSMN-VAD with the released weights: network scores, offline and streaming segments, options."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
import soundfile as sf
import torch

from conftest import AUDIO, BUNDLED_VAD, PARITY, RUNTIME, TOLERANCE_MS, exported, parity_cases, parity_path, read_wave
from funasr.audio import AudioItem
from funasr.auto_model import AutoModel
from funasr.config import resolve_model_dir
from funasr.errors import FunASRError
from funasr.frontend import WavFrontendOnline
from funasr.models import load_checkpoint
from funasr.models.fsmn_vad.model import FsmnVADStreaming
from funasr.models.fsmn_vad.segmenter import ChunkedSegmenter, Segmenter, VADOptions

def assert_segments_close(got: list, expected: list) -> None:
    assert len(got) == len(expected), (got, expected)
    for g, e in zip(got, expected):
        for a, b in zip(g, e):
            assert (a == -1) == (b == -1) and abs(a - b) <= TOLERANCE_MS, (got, expected)


def join_events(events: list) -> list:
    """Streaming events ([beg, -1], [-1, end], [beg, end]) -> complete segments."""
    segments, start = [], None
    for beg, end in events:
        if beg != -1 and end == -1:
            start = beg
        elif beg == -1:
            segments.append([start, end])
            start = None
        else:
            segments.append([beg, end])
    return segments


@pytest.fixture(scope="module")
def vad() -> AutoModel:
    return AutoModel(model=str(BUNDLED_VAD), disable_pbar=True)


@pytest.fixture(scope="module")
def network() -> FsmnVADStreaming:
    cfg = resolve_model_dir(BUNDLED_VAD)
    model = FsmnVADStreaming.from_config(cfg, input_size=400, vocab_size=None)
    load_checkpoint(model, cfg["init_param"])
    return model.eval()


# --- network -----------------------------------------------------------------------------------


def test_scores_match_reference(network):
    ref = np.load(PARITY / "intermediates" / "fsmn-vad__example.npz")
    with torch.inference_mode():
        scores, cache = network(torch.from_numpy(ref["feats"]))
    assert scores.shape == ref["scores"].shape == (1, 553, 248)
    np.testing.assert_allclose(scores.numpy(), ref["scores"], atol=1e-4)
    assert [tuple(c.shape) for c in cache] == [(1, 19, 128)] * 4


# Chunking changes only the float32 summation order inside the matmuls (more so with threads, which
# split them differently), so the logits (|z| <= 18, one ulp ~2e-6) of chunked and whole runs differ by
# a few ulps per layer: 1.2e-5 measured on 2 threads.  Allowing 1e-4 on the logits (~50 ulps), and
# since a softmax moves each probability by at most half the largest logit change
# (|dp_i| = p_i |dz_i - sum_j p_j dz_j| <= 2 p_i (1 - p_i) max|dz| <= max|dz| / 2), the scores may
# differ by 5e-5.  A lost or misplaced cache frame moves them by more than 0.5.
CHUNKED_SCORES_ATOL = 5e-5


@pytest.mark.parametrize("threads", [1, 2])
def test_chunked_scores_equal_whole_sequence(network, threads):
    feats = torch.from_numpy(np.load(PARITY / "intermediates" / "fsmn-vad__example.npz")["feats"])
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        with torch.inference_mode():
            whole, _ = network(feats)
            cache, parts = None, []
            for i in range(0, feats.shape[1], 7):  # chunks shorter than the 19-frame memory
                out, cache = network(feats[:, i : i + 7], cache)
                parts.append(out)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_allclose(torch.cat(parts, 1).numpy(), whole.numpy(), rtol=0, atol=CHUNKED_SCORES_ATOL)


def test_frontend_features_match_reference():
    ref = np.load(PARITY / "intermediates" / "fsmn-vad__example.npz")["feats"]
    cfg = resolve_model_dir(BUNDLED_VAD)
    frontend = WavFrontendOnline(**cfg["frontend_conf"])
    feats, _ = frontend([read_wave("example.wav")])
    np.testing.assert_allclose(feats, ref, atol=1e-3)


# --- offline -----------------------------------------------------------------------------------


@pytest.mark.parametrize("case", parity_cases("vad/"), ids=lambda c: c["id"])
def test_parity(case):
    init = {**case["init"], "model": str(parity_path(case["init"]["model"])), "disable_pbar": True}
    model = AutoModel(**init)
    source = case["input"]
    if isinstance(source, dict):
        wav, fs = sf.read(parity_path(source["array_from"]), dtype="float32")
        result = model.generate(input=wav, fs=fs, **case["generate"])
    else:
        result = model.generate(input=str(parity_path(source)), **case["generate"])
    (expected,) = case["expected"]
    assert len(result) == 1
    assert_segments_close(result[0]["value"], expected["value"])
    if isinstance(source, str):
        assert result[0]["key"] == expected["key"]


def test_list_input_gives_one_result_per_file(vad):
    out = vad.generate(input=[str(AUDIO / "example.wav"), str(AUDIO / "sample.wav")])
    assert [r["key"] for r in out] == ["example", "sample"]
    assert_segments_close(out[0]["value"], [[610, 5530]])
    assert_segments_close(out[1]["value"], [[770, 5980]])


def test_max_single_segment_time_from_constructor():
    model = AutoModel(model=str(BUNDLED_VAD), max_single_segment_time=1000, disable_pbar=True)
    segments = model.generate(input=str(AUDIO / "pub_concat.wav"))[0]["value"]
    assert len(segments) > 10
    assert all(0 < end - beg <= 1010 for beg, end in segments)


def test_max_end_silence_time_applies_to_that_call_only(vad):
    wav = read_wave("sample.wav")
    dynamic = [[770, 5980]]  # the default schedule: 2000 ms of silence end a segment
    classic = [[770, 2400], [3380, 5980]]  # 800 ms (FunASR < 1.4 and its onnx runtime)
    assert_segments_close(vad.generate(input=wav)[0]["value"], dynamic)
    assert_segments_close(vad.generate(input=wav, max_end_silence_time=800)[0]["value"], classic)
    assert_segments_close(vad.generate(input=wav)[0]["value"], dynamic)


def test_dynamic_silence_false_is_classic_behaviour(vad):
    wav = read_wave("pub_concat.wav")
    classic = vad.generate(input=wav, max_end_silence_time=800)[0]["value"]
    assert vad.generate(input=wav, dynamic_silence=False)[0]["value"] == classic
    assert len(classic) > len(vad.generate(input=wav)[0]["value"])


def test_speech_noise_thres_applies_to_that_call_only(vad):
    wav = read_wave("pub_concat.wav")
    base = vad.generate(input=wav, dynamic_silence=False)[0]["value"]
    strict = vad.generate(input=wav, dynamic_silence=False, speech_noise_thres=0.95)[0]["value"]
    assert strict != base
    assert sum(e - b for b, e in strict) < sum(e - b for b, e in base)
    assert vad.generate(input=wav, dynamic_silence=False)[0]["value"] == base


def test_constructor_max_end_silence_time_turns_the_schedule_off():
    model = AutoModel(model=str(BUNDLED_VAD), max_end_silence_time=800, disable_pbar=True)
    assert_segments_close(model.generate(input=read_wave("sample.wav"))[0]["value"], [[770, 2400], [3380, 5980]])


@pytest.mark.parametrize("samples", [0, 100, 48000])
def test_empty_and_silent_audio(vad, samples):
    (out,) = vad.task([AudioItem("silence", np.zeros(samples, dtype=np.float32))])
    assert out == {"key": "silence", "value": []}


def test_noise_only_audio(vad):
    noise = (np.random.default_rng(0).standard_normal(5 * 16000) * 0.005).astype(np.float32)
    assert vad.generate(input=noise)[0]["value"] == []


# --- streaming ---------------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_ms", [200, 600])
def test_streaming_matches_reference(vad, chunk_ms):
    expected = json.loads((PARITY / "vad_streaming.json").read_text())["per_chunk"][str(chunk_ms)]
    wav = read_wave("pub_concat.wav")
    step = chunk_ms * 16
    chunks = [wav[i : i + step] for i in range(0, len(wav), step)]
    assert len(chunks) == len(expected)
    cache: dict = {}
    got = []
    for i, chunk in enumerate(chunks):
        (out,) = vad.generate(input=chunk, cache=cache, is_final=i == len(chunks) - 1, chunk_size=chunk_ms)
        got.append(out["value"])
    for g, e in zip(got, expected):
        assert_segments_close(g, e)
    assert cache == {}  # a finished stream leaves a clean cache for the next one
    offline = vad.generate(input=wav)[0]["value"]
    assert_segments_close(join_events([ev for events in got for ev in events]), offline)


def test_streaming_uneven_chunks_carry_samples(vad):
    wav = read_wave("sample.wav")
    cache: dict = {}
    events = []
    for i in range(0, len(wav), 5000):  # 312.5 ms pieces with chunk_size=200: leftovers carry over
        events += vad.generate(input=wav[i : i + 5000], cache=cache, is_final=i + 5000 >= len(wav), chunk_size=200)[0]["value"]
    assert_segments_close(join_events(events), vad.generate(input=wav)[0]["value"])


def test_stream_objects_give_the_reference_events(vad):
    # The typed API under generate(cache=): create_stream / accept_waveform / decode_stream.
    expected = json.loads((PARITY / "vad_streaming.json").read_text())["per_chunk"]["200"]
    wav = read_wave("pub_concat.wav")
    stream = vad.task.create_stream(chunk_ms=200)
    got = []
    for i in range(0, len(wav), 3200):
        stream.accept_waveform(wav[i : i + 3200])
        if i + 3200 >= len(wav):
            stream.input_finished()
        got.append(vad.task.decode_stream(stream))
    for g, e in zip(got, expected):
        assert_segments_close(g, e)
    assert stream.closed and vad.task.decode_stream(stream) == []
    with pytest.raises(FunASRError, match="input_finished"):
        stream.accept_waveform(wav[:100])


def fixed_batch_copy(src: Path, dst: Path) -> Path:
    """An export with FunASR's graph layout: the batch axis fixed at 1."""
    shutil.copytree(src, dst)
    for file in dst.glob("*.onnx"):
        graph = onnx.load(str(file))
        for value in [*graph.graph.input, *graph.graph.output]:
            value.type.tensor_type.shape.dim[0].dim_value = 1
        onnx.save(graph, str(file))
    return dst


@pytest.fixture(scope="module", params=["torch", "onnx", "onnx-batch-1"])
def any_vad(request, vad, export_root, tmp_path_factory):
    """The VAD on each engine: PyTorch, our ONNX export (streams batched), and a graph with a fixed batch of 1."""
    if request.param == "torch":
        return vad
    if str(RUNTIME) not in sys.path:
        sys.path.insert(0, str(RUNTIME))
    import funasr_onnx

    folder = exported(export_root, "fsmn-vad")
    if request.param == "onnx-batch-1":
        folder = fixed_batch_copy(folder, tmp_path_factory.mktemp("vad") / "fixed")
    model = funasr_onnx.AutoModel(model=str(folder), disable_pbar=True)
    assert model.task.net.batched == (request.param == "onnx")
    return model


def test_decode_streams_keeps_each_stream_apart(any_vad):
    # Three streams at different positions, decoded together (chunks of unequal frame counts in one round), each get
    # their single-stream events.
    vad = any_vad
    waves = [read_wave("pub_concat.wav"), read_wave("sample.wav"), read_wave("example.wav")[4000:]]
    alone = []
    for wav in waves:
        cache: dict = {}
        alone.append(vad.generate(input=wav, cache=cache, is_final=True, chunk_size=200)[0]["value"])
    streams = [vad.task.create_stream(chunk_ms=200) for _ in waves]
    events: list[list] = [[] for _ in waves]
    steps = [1700, 3200, 5000]
    for k in range(0, max(len(w) // s + 1 for w, s in zip(waves, steps))):
        for stream, wav, step in zip(streams, waves, steps):
            piece = wav[k * step : (k + 1) * step]
            if not stream.finished:
                stream.accept_waveform(piece)
                if (k + 1) * step >= len(wav):
                    stream.input_finished()
        for out, new in zip(events, vad.task.decode_streams(streams)):
            out += new
    assert events == alone and all(alone)


def test_one_task_serves_streams_in_threads(vad):
    wav = read_wave("pub_concat.wav")

    def decode(_: int) -> list:
        stream = vad.task.create_stream(chunk_ms=200)
        out = []
        for i in range(0, len(wav), 4000):
            stream.accept_waveform(wav[i : i + 4000])
            out += vad.task.decode_stream(stream)
        stream.input_finished()
        return out + vad.task.decode_stream(stream)

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(decode, range(4)))
    assert all(r == results[0] for r in results) and results[0]


@pytest.mark.parametrize("cache", [{"fsmn": None}, {"stream": "x"}])
def test_cache_not_from_a_vad_stream_is_refused(vad, cache):
    with pytest.raises(FunASRError, match="cache"):
        vad.generate(input=read_wave("sample.wav")[:3200], cache=cache, chunk_size=200)


# --- segmenter on controlled posteriors ----------------------------------------------------------


def segment(p_sil: np.ndarray, end_silence_ms: float) -> list:
    seg = Segmenter(VADOptions())
    seg.set_thresholds(end_silence_ms, 0.6)
    seg.accept(p_sil, np.zeros(len(p_sil)), is_final=True)
    return seg.take(streaming=False, is_final=True)


def two_bursts(gap_ms: int) -> np.ndarray:
    """1 s silence, 2 s speech, a gap, 2 s speech, 3 s silence (10 ms frames)."""
    return np.concatenate([np.ones(100), np.zeros(200), np.ones(gap_ms // 10), np.zeros(200), np.ones(300)])


@pytest.mark.parametrize(
    "end_silence_ms, merged_gap, split_gap", [(650, 550, 560), (1850, 1750, 1760)]  # 800 ms and 2000 ms configs
)
def test_gap_splits_at_threshold_minus_90ms(end_silence_ms, merged_gap, split_gap):
    assert segment(two_bursts(merged_gap), end_silence_ms) == [[740, 5000 + merged_gap + 160]]
    split = segment(two_bursts(split_gap), end_silence_ms)
    assert len(split) == 2
    assert split[0] == [740, 3160]  # onset - 260 ms, last speech + 160 ms


def test_start_after_long_threshold_end_waits_for_window():
    # With 1850 ms the end point is declared after speech resumed: the window restarts and
    # the next start is max(previous end, detection - 400 ms) (4640, not onset - 260 ms = 4500).
    assert segment(two_bursts(1760), 1850)[1][0] == 4640


def test_single_utterance_mode_stops_after_first_segment():
    seg = Segmenter(VADOptions(detect_mode=0))
    p_sil = two_bursts(1000)
    seg.accept(p_sil, np.zeros(len(p_sil)), is_final=True)
    assert seg.take(streaming=False, is_final=True) == [[740, 3160]]


def test_dynamic_schedule_shortens_silence_inside_long_speech():
    # Speech from 50 s to 75 s with a 300 ms pause at 65 s, in 60 s chunks: the second chunk starts
    # inside the segment, so its end silence is 200 ms and the pause splits.
    p = np.ones(9000)
    p[5000:7500] = 0.0
    p[6500:6530] = 1.0

    def run(dynamic: bool) -> list:
        stream = ChunkedSegmenter(VADOptions(dynamic_silence=dynamic), streaming=False)
        out, samples = [], np.zeros(240, dtype=np.float32)
        for start in range(0, 9000, 6000):
            stream.begin_chunk(60000)
            n = min(6000, 9000 - start)
            samples = np.concatenate([samples, np.zeros(n * 160, dtype=np.float32)])
            out += stream.accept(samples, p[start : start + n], is_final=start + n == 9000)
            samples = np.zeros(0, dtype=np.float32)
        return out

    dynamic = run(True)
    assert len(dynamic) == 2 and dynamic[0][0] == 49740 and 65000 <= dynamic[0][1] <= 65200
    assert len(run(False)) == 1


def test_segmenter_imports_without_torch():
    code = "import sys; sys.modules['torch'] = None; import funasr.models.fsmn_vad.segmenter, funasr.frontend, funasr.streaming"
    subprocess.run([sys.executable, "-c", code], check=True)
