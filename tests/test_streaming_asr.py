"""Streaming Paraformer (ParaformerStreaming): the reference's per-call texts, typed streams, batching of streams."""
from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest

from conftest import AUDIO, MODELS, PARITY, auto, norm_text, read_wave
from funasr.errors import FunASRError, OptionError
from funasr.streaming import ParaformerStream

MODEL = "paraformer_streaming_tiny"


@lru_cache(maxsize=None)
def cases() -> list[dict]:
    return json.loads((PARITY / "streaming.json").read_text(encoding="utf-8"))["asr_cases"]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    return auto(MODEL)


def audio(utt: dict) -> np.ndarray:
    return read_wave(utt["audio"].split("/")[-1])[: utt["audio_samples"]]


def texts(results: list[str]) -> list[str]:
    return [norm_text(t) for t in results]


def replay_together(task, chosen: list[dict]) -> list[list[str]]:
    """Each case's utterance replayed as a typed stream of ``task`` with the case's settings; all the
    streams (different chunk sizes, look-backs and positions) decoded together, one decode_streams per call."""
    streams, plans = [], []
    for case in chosen:
        utt = case["utterances"][0]
        g = utt["generate"]
        streams.append(task.create_stream(g["chunk_size"], g["encoder_chunk_look_back"], g["decoder_chunk_look_back"]))
        plans.append((audio(utt), utt["calls"]))
    got: list[list[str]] = [[] for _ in chosen]
    pos = [0] * len(chosen)
    for k in range(max(len(calls) for _, calls in plans)):
        live = [i for i, (_, calls) in enumerate(plans) if k < len(calls)]
        for i in live:
            wav, calls = plans[i]
            streams[i].accept_waveform(wav[pos[i] : pos[i] + calls[k]["samples"]])
            pos[i] += calls[k]["samples"]
            if calls[k]["is_final"]:
                streams[i].input_finished()
        for i, result in zip(live, task.decode_streams([streams[i] for i in live])):
            got[i].append(result["text"])
    return got


def test_every_reference_case_through_streams_decoded_together(model):
    # Every one-utterance case replayed as a typed stream, all cases decoded together call by call.
    single = [c for c in cases() if len(c["utterances"]) == 1]
    for case, got in zip(single, replay_together(model.task, single)):
        assert texts(got) == texts([c["text"] for c in case["utterances"][0]["calls"]]), case["id"]
    assert len(single) >= 25


@pytest.mark.parametrize("cid", [
    "reuse_cache/example+sample/c10_lb4_1",
    "reuse_cache/example+sample/c10_lb4_1_then_c10_lb0_0",
    "example/c10_lb4_1/exact_then_empty_final",
    "example/c8_lb4_1/irregular",
])
def test_generate_with_cache_gives_the_reference_calls(model, cid):
    # FunASR's call protocol: one cache dict per case, reused across utterances (settings of the last final call).
    case = next(c for c in cases() if c["id"].endswith(cid))
    cache: dict = {}
    for utt in case["utterances"]:
        wav, pos, got = audio(utt), 0, []
        for call in utt["calls"]:
            res = model.generate(input=wav[pos : pos + call["samples"]], cache=cache, is_final=call["is_final"], **utt["generate"])
            pos += call["samples"]
            assert len(res) == 1 and set(res[0]) == {"key", "text"}
            got.append(res[0]["text"])
        assert texts(got) == texts([c["text"] for c in utt["calls"]])


def test_whole_file_decodes_offline(model):
    # A file is a whole utterance: one call, final, like the reference's 'whole' cases.
    case = next(c for c in cases() if c["id"].endswith("sample/c10_lb4_1/whole"))
    res = model.generate(input=str(AUDIO / "sample.wav"), encoder_chunk_look_back=4, decoder_chunk_look_back=1)
    assert norm_text(res[0]["text"]) == norm_text(case["utterances"][0]["calls"][0]["text"]) != ""


def run_alone(task, wav: np.ndarray, cuts: list[int]) -> list[str]:
    """Per-decode texts of one stream fed ``wav`` cut at ``cuts`` (then finished), decoded alone."""
    stream = task.create_stream()
    out = []
    for a, b in zip([0, *cuts], [*cuts, len(wav)]):
        stream.accept_waveform(wav[a:b])
        if b == len(wav):
            stream.input_finished()
        out.append(task.decode_stream(stream)["text"])
    return out


def test_eight_streams_at_different_positions_match_single_stream(model):
    # 8 streams starting at different rounds, with different audio and cut sizes, decoded together
    # by decode_streams each round, get exactly their single-stream results.
    task = model.task
    full = read_wave("pub_concat.wav")
    rng = np.random.default_rng(0)
    plans = []
    for i in range(8):
        start = int(rng.integers(0, len(full) - 120000))
        wav = full[start : start + 40000 + 9000 * i]
        step = [4000, 9600, 12000, 7000][i % 4]
        plans.append((i, wav, list(range(step, len(wav), step))))  # stream i joins at round i
    alone = [run_alone(task, wav, cuts) for _, wav, cuts in plans]
    streams = [task.create_stream() for _ in plans]
    got: list[list[str]] = [[] for _ in plans]
    for rnd in range(max(i + len(c) + 1 for i, _, c in plans)):
        live = []
        for j, (delay, wav, cuts) in enumerate(plans):
            k = rnd - delay
            if 0 <= k <= len(cuts):
                a, b = ([0, *cuts])[k], ([*cuts, len(wav)])[k]
                streams[j].accept_waveform(wav[a:b])
                if b == len(wav):
                    streams[j].input_finished()
                live.append(j)
        for j, res in zip(live, task.decode_streams([streams[j] for j in live])):
            got[j].append(res["text"])
    assert got == alone
    assert sum(len("".join(g)) for g in got) > 40  # the streams did produce text


def test_per_chunk_state_stays_bounded(model):
    # Per-chunk work is proportional to the chunk: after many chunks the stream keeps only the
    # look-back it was asked for (4 chunks of encoder keys, 1 of encoder output, kernel-1 FSMN inputs).
    task = model.task
    stream = task.create_stream([0, 10, 5], 4, 1)
    wav = read_wave("pub_concat.wav")
    for i in range(0, 9600 * 25, 9600):
        stream.accept_waveform(wav[i : i + 9600])
        task.decode_stream(stream)
    cache = stream.net_cache
    assert {k.shape[0] for k, _ in cache.encoder} == {40}
    assert {k.shape[0] for k, _ in cache.cross} == {10}
    assert {h.shape[-1] for h in cache.fsmn} == {10}
    assert stream.overlap.shape == (5, 560) and stream.frames == 250
    assert len(stream.pending) == 0


def test_stream_lifecycle_and_bad_options(model):
    task = model.task
    stream = task.create_stream()
    assert isinstance(stream, ParaformerStream)
    stream.accept_waveform(read_wave("example.wav")[:5000])
    assert task.decode_stream(stream)["text"] == ""  # less than one chunk: nothing decoded yet
    stream.input_finished()
    task.decode_stream(stream)
    assert stream.closed and task.decode_stream(stream)["text"] == ""
    with pytest.raises(FunASRError):
        stream.accept_waveform(np.zeros(10, np.float32))
    for bad in ([0, 10], [0, 0, 5], [0, 10, 0], "0,10,5", [0, 10.5, 5]):
        with pytest.raises(OptionError, match="chunk_size"):
            task.create_stream(bad)
    with pytest.raises(OptionError, match="encoder_chunk_look_back"):
        task.create_stream(encoder_chunk_look_back=-2)
    with pytest.raises(OptionError, match="chunk_size"):
        model.generate(input=np.zeros(9600, np.float32), cache={}, chunk_size=[0, 10])
    with pytest.raises(OptionError, match="cache"):
        model.generate(input=np.zeros(9600, np.float32), cache={"encoder": {}})


def test_model_directory_is_the_released_layout():
    cfg = (MODELS / MODEL / "config.yaml").read_text()
    assert "model: ParaformerStreaming" in cfg and "encoder: SANMEncoderChunkOpt" in cfg


# --- export and funasr_onnx ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def onnx_model(export_root):
    import sys

    from conftest import RUNTIME, exported

    sys.path.insert(0, str(RUNTIME))
    import funasr_onnx

    return funasr_onnx.AutoModel(model=str(exported(export_root, MODEL)), disable_pbar=True)


def test_export_writes_the_online_graphs_with_funasr_names(onnx_model, export_root):
    import onnx

    out = export_root / f"{MODEL}-onnx"
    for name in ("model", "decoder", "model_look_back", "decoder_look_back"):
        assert (out / f"{name}.onnx").is_file() and (out / f"{name}_quant.onnx").is_file(), name
    enc = onnx.load(str(out / "model.onnx")).graph
    dec = onnx.load(str(out / "decoder.onnx")).graph
    assert [i.name for i in enc.input] == ["speech", "speech_lengths"]
    assert [o.name for o in enc.output] == ["enc", "enc_len", "alphas"]
    caches = ["in_cache_0", "in_cache_1", "in_cache_2"]
    assert [i.name for i in dec.input] == ["enc", "enc_len", "acoustic_embeds", "acoustic_embeds_len", *caches]
    assert [o.name for o in dec.output] == ["logits", "sample_ids", "out_cache_0", "out_cache_1", "out_cache_2"]
    enc_lb = onnx.load(str(out / "model_look_back.onnx")).graph
    dec_lb = onnx.load(str(out / "decoder_look_back.onnx")).graph
    assert [i.name for i in enc_lb.input] == ["speech", "speech_lengths", "look_back_keys", "look_back_values", "look_back_len"]
    assert [o.name for o in enc_lb.output] == ["enc", "enc_len", "alphas", "keys", "values"]
    assert [i.name for i in dec_lb.input] == ["enc", "enc_len", "acoustic_embeds", "acoustic_embeds_len",
                                             "look_back_enc", "look_back_enc_len", *caches]


def test_onnx_streams_match_every_reference_case(onnx_model):
    # The look-back graphs carry each stream's attention look-back: every one-utterance case, decoded together.
    single = [c for c in cases() if len(c["utterances"]) == 1]
    for case, got in zip(single, replay_together(onnx_model.task, single)):
        assert texts(got) == texts([c["text"] for c in case["utterances"][0]["calls"]]), case["id"]


def test_onnx_generate_adapter_reuses_the_cache(onnx_model):
    # The reference's cache-reuse cases (two utterances, the second with other look-backs) through funasr_onnx's generate.
    for cid in ("reuse_cache/example+sample/c10_lb4_1", "reuse_cache/example+sample/c10_lb4_1_then_c10_lb0_0"):
        case = next(c for c in cases() if c["id"].endswith(cid))
        cache: dict = {}
        for utt in case["utterances"]:
            wav, pos, got = audio(utt), 0, []
            for call in utt["calls"]:
                res = onnx_model.generate(input=wav[pos : pos + call["samples"]], cache=cache, is_final=call["is_final"],
                                          **utt["generate"])
                pos += call["samples"]
                got.append(res[0]["text"])
            assert texts(got) == texts([c["text"] for c in utt["calls"]]), cid


def test_funasr_online_pair_alone_decodes_without_look_back(export_root, tmp_path, caplog):
    # A folder with FunASR's two online graphs only (as FunASR exports it): look-back 0, with a warning when more is asked.
    import shutil

    import funasr_onnx

    src = export_root / f"{MODEL}-onnx"
    for f in src.iterdir():
        if "look_back" not in f.name:
            shutil.copy(f, tmp_path / f.name)
    pair = funasr_onnx.AutoModel(model=str(tmp_path), disable_pbar=True)
    lb0 = [c for c in cases() if "/c10_lb0_0/" in c["id"]]
    for case, got in zip(lb0, replay_together(pair.task, lb0)):
        assert texts(got) == texts([c["text"] for c in case["utterances"][0]["calls"]]), case["id"]
    with caplog.at_level("WARNING"):
        stream = pair.task.create_stream([0, 10, 5], 4, 1)
        stream.accept_waveform(read_wave("example.wav"))
        stream.input_finished()
        pair.task.decode_streams([stream])
    assert "look-back 0" in caplog.text


def test_onnx_int8_streams_run(export_root):
    import funasr_onnx

    utt = next(c for c in cases() if c["id"].endswith("example/c10_lb4_1/exact"))["utterances"][0]
    int8 = funasr_onnx.AutoModel(model=str(export_root / f"{MODEL}-onnx"), quantize=True, disable_pbar=True)
    assert int8.task.net.look_back
    assert isinstance(int8.generate(input=audio(utt), chunk_size=[0, 10, 5], encoder_chunk_look_back=4)[0]["text"], str)


def test_onnx_streaming_runs_without_torch(onnx_model, export_root):
    import subprocess
    import sys

    from conftest import ROOT, RUNTIME

    code = (
        "import sys; sys.modules['torch'] = None\n"
        f"sys.path[:0] = [{str(RUNTIME)!r}, {str(ROOT)!r}]\n"
        "import numpy as np, soundfile as sf, funasr_onnx\n"
        f"m = funasr_onnx.AutoModel(model={str(export_root / (MODEL + '-onnx'))!r}, disable_pbar=True)\n"
        f"x = sf.read({str(AUDIO / 'example.wav')!r}, dtype='float32')[0]\n"
        "s = m.task.create_stream([0, 10, 5], 0, 0); s.accept_waveform(x); s.input_finished()\n"
        "print(m.task.decode_streams([s])[0]['text'])\n"
        "assert sys.modules['torch'] is None\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/tmp")
    assert out.returncode == 0, out.stderr[-2000:]
    whole = next(c for c in cases() if c["id"].endswith("example/c10_lb0_0/exact"))["utterances"][0]["joined"]
    assert norm_text(out.stdout.strip(), spaces=False) == norm_text(whole, spaces=False)


def test_batches_of_whole_utterances_and_vad_segments(model):
    # Without a cache each input is a whole utterance; a batch is decoded together and equals one-by-one decoding.
    files = [str(AUDIO / n) for n in ("example.wav", "sample.wav")]
    together = model.generate(input=files, batch_size=2, encoder_chunk_look_back=4, decoder_chunk_look_back=1)
    alone = [model.generate(input=f, encoder_chunk_look_back=4, decoder_chunk_look_back=1)[0] for f in files]
    assert together == alone and all(r["text"] for r in together)
    from conftest import BUNDLED_VAD
    from funasr import AutoModel

    with_vad = AutoModel(model=str(MODELS / MODEL), vad_model=str(BUNDLED_VAD), device="cpu", disable_pbar=True)
    res = with_vad.generate(input=str(AUDIO / "pub_concat.wav"))
    assert len(res) == 1 and res[0]["text"]


def test_decode_streams_keeps_good_streams_when_one_item_is_bad(model):
    task = model.task
    stream = task.create_stream()
    stream.accept_waveform(read_wave("example.wav"))
    stream.input_finished()
    out = task.decode_streams([stream, "not a stream"])
    assert out[0]["text"] and "error" in out[1] and "create_stream" in out[1]["error"]
    with pytest.raises(OptionError, match="more than once"):
        task.decode_streams([stream, stream])
