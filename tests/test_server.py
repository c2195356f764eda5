"""funasr-server over real sockets: FunASR's client protocol, the OpenAI-compatible API, limits and faults."""
from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Iterator, Optional

import httpx
import numpy as np
import pytest
import soundfile as sf
import torch
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import AUDIO, BUNDLED_VAD, MODELS, PARITY, close_ms, norm_text, parity_cases
from funasr.audio import AudioItem
from funasr.errors import OptionError
from funasr.serve.app import ServerConfig, create_app, serving
from funasr.serve.models import ModelChoice, Models
from funasr.serve.protocol import NOT_PCM, parse_chunk_size, ProtocolError, stamp_sents
from funasr.serve.batcher import StreamBatcher, cgroup_cpu_quota, cores
from funasr.serve.session import Limits, RecentAudio

STREAMING_MODEL = MODELS / "paraformer_streaming_tiny"  # arrives with the streaming Paraformer
needs_streaming = pytest.mark.skipif(not STREAMING_MODEL.is_dir(), reason="the streaming Paraformer fixture is not here yet")
FRAME = 1920  # bytes of a FunASR client frame: 60 ms of 16 kHz int16
TIMEOUT = 60  # seconds any one exchange may take


@pytest.fixture(scope="module")
def models() -> Iterator[Models]:
    """The parity models loaded as the server loads them (one torch thread): the offline pipeline of the parity case
    ``pipe/bicif_punc_sent`` (VAD -> BiCif Paraformer -> CT punctuation), realtime punctuation, and the streaming
    Paraformer for partial results once its fixture is there."""
    threads = torch.get_num_threads()
    choice = ModelChoice(model=str(MODELS / "bicif_paraformer_tiny"), online_model=str(STREAMING_MODEL) if STREAMING_MODEL.is_dir() else None,
                         vad_model=str(BUNDLED_VAD),
                         punc_model=str(MODELS / "ct_punc_tiny"), realtime_punc_model=str(MODELS / "ct_punc_realtime_tiny"))
    yield Models.load(choice)
    torch.set_num_threads(threads)


@contextmanager
def server(models: Models, send_buffer_bytes: Optional[int] = None, **config) -> Iterator[str]:
    """A server on a free loopback port; yields its ``host:port``."""
    cfg = ServerConfig(**config)
    with serving(create_app(models, cfg), max_message_bytes=cfg.max_message_bytes, send_buffer_bytes=send_buffer_bytes) as port:
        yield f"127.0.0.1:{port}"


def pcm(name: str) -> bytes:
    """A parity audio file as raw 16 kHz int16 PCM bytes."""
    return sf.read(AUDIO / name, dtype="int16")[0].tobytes()


def client(address: str, first: dict, audio: bytes, pace: float = 0.0, end: bool = True, **kw) -> list[dict]:
    """FunASR's client: the first message, 1920-byte frames (``pace`` seconds apart), ``{"is_speaking": false}``;
    returns the messages up to the one with ``is_final``."""
    out: list[dict] = []
    with connect(f"ws://{address}/", subprotocols=["binary"], open_timeout=TIMEOUT, close_timeout=5, **kw) as ws:
        ws.send(json.dumps(first))
        for i in range(0, len(audio), FRAME):
            ws.send(audio[i : i + FRAME])
            if pace:
                time.sleep(pace)
        if end:
            ws.send(json.dumps({"is_speaking": False}))
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            message = json.loads(ws.recv(timeout=deadline - time.monotonic()))
            out.append(message)
            if message.get("is_final"):
                break
    return out


def closing(address: str, messages: list, **kw) -> tuple[list[dict], Optional[int], str]:
    """Send ``messages`` (str or bytes) and read until the server closes: (replies, close code, reason)."""
    replies: list[dict] = []
    with connect(f"ws://{address}/", open_timeout=TIMEOUT, close_timeout=5, **kw) as ws:
        try:
            for m in messages:
                ws.send(m)
            while True:
                replies.append(json.loads(ws.recv(timeout=TIMEOUT)))
        except ConnectionClosed as e:
            rcvd = e.rcvd
            return replies, rcvd.code if rcvd else None, rcvd.reason if rcvd else ""
    return replies, None, ""


PIPE = parity_cases("pipe/bicif_punc_sent/")[0]


def check_pipeline_result(message: dict) -> None:
    """A reply carries the parity pipeline result of pub_concat.wav: text, timestamps, sentences."""
    want = PIPE["expected"][0]
    assert norm_text(message["text"]) == norm_text(want["text"])
    assert close_ms(json.loads(message["timestamp"]), want["timestamp"])
    got = message["stamp_sents"]
    assert len(got) == len(want["sentence_info"])
    assert close_ms([[s["start"], s["end"]] for s in got], [[s["start"], s["end"]] for s in want["sentence_info"]])
    assert all(s["punc"] in "，。？、" for s in got) and sum(len(s["ts_list"]) for s in got) == len(want["timestamp"])


def test_offline_mode_funasr_client_protocol(models):
    """FunASR's client in offline mode (1920-byte frames, end message) gets the pipeline's parity result."""
    with server(models) as address:
        first = {"mode": "offline", "chunk_size": "5,10,5", "chunk_interval": 10, "wav_name": "pub_concat",
                 "wav_format": "pcm", "is_speaking": True, "hotwords": "", "itn": True}
        replies = client(address, first, pcm("pub_concat.wav"))
    assert len(replies) == 1
    message = replies[0]
    assert message["mode"] == "offline" and message["wav_name"] == "pub_concat" and message["is_final"] is True
    check_pipeline_result(message)


def test_http_transcriptions_equal_pipeline(models):
    """POST /v1/audio/transcriptions gives the pipeline's result in each format; /v1/models and /health answer."""
    data = (AUDIO / "pub_concat.wav").read_bytes()
    want = PIPE["expected"][0]
    with server(models, token="s3cret") as address:
        base, auth = f"http://{address}", {"Authorization": "Bearer s3cret"}
        with httpx.Client(base_url=base, timeout=TIMEOUT) as http:
            assert http.get("/health").status_code == 401
            health = http.get("/health", headers=auth).json()
            assert health["status"] == "ok" and health["models_loaded"][0].endswith("bicif_paraformer_tiny")
            assert http.get("/v1/models", headers=auth).json()["data"][0]["object"] == "model"

            def post(fmt: str, **fields) -> httpx.Response:
                return http.post("/v1/audio/transcriptions", headers=auth, files={"file": ("a.wav", data, "audio/wav")},
                                 data={"model": "whisper-1", "response_format": fmt, **fields})

            assert norm_text(post("json").json()["text"]) == norm_text(want["text"])
            assert norm_text(post("text").text) == norm_text(want["text"])
            verbose = post("verbose_json").json()
            assert abs(verbose["duration"] - 21.593) < 0.01 and len(verbose["segments"]) == len(want["sentence_info"])
            assert close_ms([[round(s["start"] * 1000), round(s["end"] * 1000)] for s in verbose["segments"]],
                            [[s["start"], s["end"]] for s in want["sentence_info"]])
            srt = post("srt").text
            assert srt.startswith("1\n00:00:0") and srt.count(" --> ") == len(want["sentence_info"])
            vtt = post("vtt").text
            assert vtt.startswith("WEBVTT\n\n") and vtt.count(" --> ") == len(want["sentence_info"])
            bad = post("xml")
            assert bad.status_code == 400 and "response_format" in bad.json()["error"]["message"]
            assert post("json", model="gpt-9").status_code == 404
            noisy = http.post("/v1/audio/transcriptions", headers=auth, files={"file": ("a.wav", b"not audio", "audio/wav")})
            assert noisy.status_code == 400 and noisy.json()["error"]["message"]
            empty = http.post("/v1/audio/transcriptions", headers=auth, files={"file": ("a.wav", b"", "audio/wav")})
            assert empty.status_code == 400 and "empty (0 bytes)" in empty.json()["error"]["message"]
            two = http.post("/v1/audio/transcriptions", headers=auth, files=[("file", ("a.wav", data)), ("file", ("b.wav", data))])
            assert two.status_code == 400 and "one audio file" in two.json()["error"]["message"]  # OpenAI's error shape


def test_faults_get_clear_errors_and_leave_others_alone(models):
    """Each bad client gets FunASR's wording (or a clear one) and a close code; a good client alongside is unaffected."""
    first = json.dumps({"mode": "offline", "wav_name": "w"})
    with server(models) as address:
        results: dict = {}
        good = threading.Thread(target=lambda: results.update(
            good=client(address, {"mode": "offline", "wav_name": "good"}, pcm("pub_concat.wav"), pace=0.002)))
        good.start()
        cases = {
            "json": (["{not json"], 1008, "malformed JSON"),
            "binary first": ([b"\x00\x01" * 960], 1008, "binary data before the first JSON message"),
            "mode": ([json.dumps({"mode": "3pass"})], 1008, "mode='3pass' is not supported"),
            "chunk list": ([json.dumps({"mode": "2pass", "chunk_size": [5, 10]})], 1008, "Wrong chunk_size"),
            "chunk string": ([json.dumps({"mode": "online", "chunk_size": "5,0,5"})], 1008, "Wrong chunk_size"),
            "not pcm": ([json.dumps({"mode": "2pass", "wav_format": "mp3"})], 1003, NOT_PCM),
            "audio_fs": ([json.dumps({"mode": "offline", "audio_fs": 44100})], 1008, "audio_fs=44100"),
            "array": (["[1, 2]"], 1008, "JSON objects"),
        }
        for name, (messages, code, text) in cases.items():
            replies, got_code, reason = closing(address, messages)
            assert got_code == code, name
            assert replies and text in replies[-1]["error"] and replies[-1]["is_final"] is True, name
            assert reason, name
        # a container sent as offline PCM is decoded as PCM (never sniffed): it yields a (noise) result, not an error
        replies = client(address, {"mode": "offline", "wav_name": "raw"}, (AUDIO / "example.wav").read_bytes())
        assert replies[-1]["mode"] == "offline" and "error" not in replies[-1]
        # abrupt disconnect mid-utterance
        sock = socket.create_connection(("127.0.0.1", int(address.split(":")[1])))
        sock.close()
        with connect(f"ws://{address}/") as ws:
            ws.send(first)
            ws.send(pcm("example.wav")[:FRAME * 5])
        good.join(TIMEOUT)
    check_pipeline_result(results["good"][-1])


def test_limits_idle_audio_length_connections_message_size_token(models):
    """Idle timeout, audio length, connection count, message size and token: each closes with a clear reason."""
    limits = Limits(max_audio_s=1.0, idle_timeout_s=0.5)
    with server(models, max_connections=1, max_message_bytes=64000, limits=limits, token="t") as address:
        _, code, reason = closing(address, [], additional_headers={"Authorization": "Bearer nope"})
        assert code == 1008 and reason.startswith("unauthorized")
        auth = {"additional_headers": {"Authorization": "Bearer t"}}
        _, code, reason = closing(address, [json.dumps({"mode": "offline"})], **auth)  # a never-ending, silent client
        assert code == 1000 and reason.startswith("idle timeout")
        replies, code, reason = closing(address, [json.dumps({"mode": "offline"})] + [b"\0" * 32000] * 3, **auth)
        assert code == 1009 and "longer than this server's 1 s" in replies[-1]["error"]
        _, code, _ = closing(address, [json.dumps({"mode": "offline"}), b"\0" * 70000], **auth)
        assert code == 1009  # the message itself is too big
        with connect(f"ws://{address}/?token=t") as held:  # the one allowed connection (browser-style token)
            held.send(json.dumps({"mode": "offline"}))
            _, code, reason = closing(address, [], **auth)
            assert code == 1013 and reason.startswith("server full")
        time.sleep(0.2)
        replies, code, _ = closing(address, [json.dumps({"mode": "offline"}), b"\0" * 3200, json.dumps({"is_speaking": False})], **auth)
        assert replies and replies[0]["is_final"] is True and replies[0]["text"] == ""  # the slot is free again


def make_certificate(folder) -> tuple[str, str, str]:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it (openssl CLI): (ca.pem, cert.pem, key.pem)."""
    import subprocess

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=funasr test CA",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "req.csr")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    run("x509", "-req", "-in", "req.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "1",
        "-extfile", "ext.cnf", "-out", "cert.pem")
    return str(folder / "ca.pem"), str(folder / "cert.pem"), str(folder / "key.pem")


def test_tls_wss_and_https_with_own_certificate(models, tmp_path):
    """Given a certificate and key, the server speaks wss:// and https:// only; a client trusting the CA is served."""
    import ssl

    ca, cert, key = make_certificate(tmp_path)
    trust = ssl.create_default_context(cafile=ca)
    with serving(create_app(models, ServerConfig()), ssl=(cert, key)) as port:
        address = f"127.0.0.1:{port}"
        first = {"mode": "offline", "wav_name": "tls"}
        with connect(f"wss://{address}/", ssl=trust, open_timeout=TIMEOUT, close_timeout=5) as ws:
            ws.send(json.dumps(first))
            ws.send(pcm("example.wav"))
            ws.send(json.dumps({"is_speaking": False}))
            reply = json.loads(ws.recv(timeout=TIMEOUT))
        assert reply["wav_name"] == "tls" and reply["is_final"] is True and reply["text"]
        assert httpx.get(f"https://{address}/health", verify=trust, timeout=TIMEOUT).json()["status"] == "ok"
        with pytest.raises(ssl.SSLCertVerificationError):  # a client that does not trust the CA
            connect(f"wss://{address}/", ssl=ssl.create_default_context(), open_timeout=TIMEOUT)
        with pytest.raises(Exception):  # plain ws:// to the TLS port gets no WebSocket
            connect(f"ws://{address}/", open_timeout=5)


def test_cross_site_browser_origin_refused(models):
    """A page of another site cannot use the WebSocket (unless its origin is configured)."""
    with server(models) as address:
        _, code, reason = closing(address, [], origin="http://evil.example")
        assert code == 1008 and "origin" in reason
        replies = client(address, {"mode": "offline"}, b"\0" * 3200, origin=f"http://{address}")
        assert replies[-1]["is_final"] is True


def test_protocol_parsing():
    """chunk_size as a list or FunASR's string; stamp_sents from sentences."""
    assert parse_chunk_size("5, 10,5") == (5, 10, 5) and parse_chunk_size([0, 8, 4]) == (0, 8, 4)
    for bad in ("5,10", [5, "x", 5], [5, 0, 5], [5.5, 10, 5], "a,b,c", None, [True, 10, 5]):
        with pytest.raises(ProtocolError, match="Wrong chunk_size"):
            parse_chunk_size(bad)
    sents = stamp_sents([{"text": "正是因为hello，", "start": 430, "end": 1130, "timestamp": [[430, 670]] * 5}])
    assert sents == [{"text_seg": "正 是 因 为 hello", "punc": "，", "start": 430, "end": 1130, "ts_list": [[430, 670]] * 5}]


def test_2pass_second_pass_per_vad_segment(models):
    """2pass: streaming VAD cuts the stream; each segment's offline pass (BiCif + punctuation) arrives with its times,
    and together they give the pipeline's segments, timestamps and raw text."""
    vad = parity_cases("vad/pub_concat")[0]["expected"][0]["value"]
    want = PIPE["expected"][0]
    with server(models) as address:
        replies = client(address, {"mode": "2pass", "chunk_size": [5, 10, 5], "wav_name": "p"}, pcm("pub_concat.wav"))
    finals = [r for r in replies if r["mode"] == "2pass-offline"]
    assert [r["is_final"] for r in finals] == [False] * (len(finals) - 1) + [True]
    assert close_ms([[r["start_time"], r["end_time"]] for r in finals], vad)
    assert [r["index"] for r in finals] == list(range(len(vad))) and all(r["slice_type"] == 2 for r in finals)
    assert close_ms([ts for r in finals for ts in json.loads(r["timestamp"])], want["timestamp"])
    strip = str.maketrans("", "", "，。？、.?")
    assert norm_text("".join(r["text"] for r in finals).translate(strip), False).lower() == norm_text(want["text"].translate(strip), False).lower()
    # realtime punctuation continues across the connection's sentences (one stream), the last closed with 。
    audio = sf.read(AUDIO / "pub_concat.wav", dtype="float32")[0]
    raw = [models.asr([AudioItem("p", audio[r["start_time"] * 16 : r["end_time"] * 16])])[0]["text"] for r in finals]
    stream = models.realtime_punc.create_stream()
    for r, text in zip(finals, raw):
        stream.accept_text(text)
        assert r["text"] == models.realtime_punc.decode_streams([stream])[0]["text"] + ("。" if r["is_final"] else "")
    assert all(sum(len(s["ts_list"]) for s in r["stamp_sents"]) == len(json.loads(r["timestamp"])) for r in finals)
def test_2pass_sentence_end_silence_is_a_server_setting(models):
    """--max-end-silence-ms: 2pass sentences end after that much silence instead of the VAD's schedule (2000 ms for
    short utterances), so finals come sooner and a 1 s pause ends a sentence."""
    audio = sf.read(AUDIO / "pub_concat.wav", dtype="float32")[0]

    def vad_segments(options) -> list[list[int]]:
        stream, events = models.vad.create_stream(chunk_ms=60, streaming=True, options=options), []  # as the server runs it
        for i in range(0, len(audio), 960):
            stream.accept_waveform(audio[i : i + 960])
            events += models.vad.decode_stream(stream)
        stream.input_finished()
        events += models.vad.decode_stream(stream)
        starts, ends = [b for b, _ in events if b >= 0], [e for _, e in events if e >= 0]
        return [list(p) for p in zip(starts, ends)]

    first = {"mode": "2pass", "chunk_size": [5, 10, 5], "wav_name": "p"}
    fixed = Models(replace(models.choice, max_end_silence_ms=800), models.offline, models.online, models.realtime_punc)
    want = vad_segments(models.vad.options.for_call(max_end_silence_time=800))
    assert len(want) > len(vad_segments(None))  # the setting changes where sentences end on this recording
    with server(fixed) as address:
        finals = [r for r in client(address, first, pcm("pub_concat.wav")) if r["mode"] == "2pass-offline"]
    assert [[r["start_time"], r["end_time"]] for r in finals if "start_time" in r] == want and finals[-1]["is_final"]
    with pytest.raises(OptionError, match="max_end_silence_ms"):
        ModelChoice(max_end_silence_ms=0)


def test_engine_choice_is_checked_before_any_model_loads(monkeypatch):
    with pytest.raises(OptionError, match="engine='tf' is not allowed"):
        ModelChoice(engine="tf")
    monkeypatch.setitem(sys.modules, "funasr_onnx", None)  # as where funasr-onnx is not installed
    with pytest.raises(OptionError, match=r"engine='onnx' needs the funasr-onnx package.*pip install ./runtime/python"):
        ModelChoice(engine="onnx")
    from funasr.batch import transcribe_batch

    with pytest.raises(OptionError, match="engine='onnx' needs"):
        transcribe_batch(AUDIO, "unused-output", "paraformer-zh", engine="onnx")


def test_slow_reader_is_closed_and_others_go_on(models):
    """A client that never reads its results: the server keeps at most a few for it, then closes it; a client
    alongside is served and the connection count returns to zero."""
    from websockets.asyncio.client import connect as connect_async

    limits = Limits(max_pending_results=4)
    with server(models, limits=limits, send_timeout_s=1.0, send_buffer_bytes=4096) as address:
        host, port = address.split(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connecting: a small window
        sock.connect((host, int(port)))

        async def never_reading() -> None:
            async with connect_async(f"ws://{address}/", sock=sock, max_queue=1, close_timeout=1, compression=None) as ws:
                await ws.send(json.dumps({"mode": "offline", "wav_name": "x" * 200}))
                try:
                    for _ in range(3000):  # each asks for a reply (an empty utterance), none is read
                        await ws.send(json.dumps({"is_speaking": False}))
                except ConnectionClosed:  # closed by the server while sending
                    pass
                replies = await asyncio.to_thread(client, address, {"mode": "offline", "wav_name": "good"}, pcm("example.wav"))
                assert replies[-1]["is_final"] is True and replies[-1]["wav_name"] == "good"
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and (await asyncio.to_thread(health, address))["connections"]:
                    await asyncio.sleep(0.2)
                assert (await asyncio.to_thread(health, address))["connections"] == 0, "the slow reader is still served"

        asyncio.run(never_reading())


def health(address: str) -> dict:
    """GET /health."""
    return httpx.get(f"http://{address}/health", timeout=TIMEOUT).json()


def stream_case(case_id: str) -> dict:
    """The streaming parity case ``case_id`` (its one utterance)."""
    cases = json.loads((PARITY / "streaming.json").read_text(encoding="utf-8"))["asr_cases"]
    return next(c for c in cases if c["id"] == case_id)["utterances"][0]


@needs_streaming
@pytest.mark.parametrize("setting", ["c10_lb4_1", "c8_lb4_1"])
def test_online_mode_gives_streaming_parity_partials(models, setting):
    """Online mode, FunASR's client (60 ms frames): one message per chunk that fires tokens, as the streaming
    parity case predicts call by call; the last (flushed at the end) has is_final."""
    want = stream_case(f"stream_asr/paraformer_streaming_tiny/example/{setting}/exact")
    first = {"mode": "online", "chunk_size": want["generate"]["chunk_size"], "wav_name": "ex",
             "encoder_chunk_look_back": want["generate"]["encoder_chunk_look_back"],
             "decoder_chunk_look_back": want["generate"]["decoder_chunk_look_back"]}
    with server(models) as address:
        replies = client(address, first, pcm("example.wav"))
    calls = want["calls"]
    expected = [c["text"] for c in calls[:-1] if c["text"]] + [calls[-1]["text"]]
    assert [r["text"] for r in replies] == expected
    assert all(r["mode"] == "online" and r["wav_name"] == "ex" for r in replies)
    assert [r["is_final"] for r in replies] == [False] * (len(replies) - 1) + [True]


@needs_streaming
def test_2pass_partials_follow_the_streaming_model(models):
    """2pass: the first sentence's 2pass-online partials are the streaming parity case's texts, chunk by chunk,
    until its VAD end; each later sentence streams from a fresh state; every sentence gets its 2pass-offline."""
    want = stream_case("stream_asr/paraformer_streaming_tiny/pub_concat/c10_lb4_1/exact")
    first = {"mode": "2pass", "chunk_size": [0, 10, 5], "encoder_chunk_look_back": 4, "decoder_chunk_look_back": 1,
             "wav_name": "p"}
    with server(models) as address:
        replies = client(address, first, pcm("pub_concat.wav"))
    online = [r for r in replies if r["mode"] == "2pass-online"]
    sentence0 = [r["text"] for r in online if r["index"] == 0]
    expected = [c["text"] for c in want["calls"] if c["text"]]
    assert len(sentence0) >= 3 and sentence0 == expected[: len(sentence0)]
    assert [r["slice_type"] for r in online if r["index"] == 0] == [0] + [1] * (len(sentence0) - 1)
    finals = [r for r in replies if r["mode"] == "2pass-offline"]
    assert {r["index"] for r in online} <= {r["index"] for r in finals} and len({r["index"] for r in online}) >= 2
    assert replies[-1]["mode"] == "2pass-offline" and replies[-1]["is_final"] is True
    assert all(not r["is_final"] for r in replies[:-1])


@pytest.mark.slow
def test_onnx_engine_offline_mode(export_root, monkeypatch):
    """The onnxruntime engine (exported folders) serves the same offline result."""
    from conftest import RUNTIME, exported

    monkeypatch.syspath_prepend(str(RUNTIME))  # funasr_onnx, as `pip install ./runtime/python` provides it
    choice = ModelChoice(model=str(exported(export_root, "bicif_paraformer_tiny")), online_model=None,
                         vad_model=str(exported(export_root, "fsmn-vad")), punc_model=str(exported(export_root, "ct_punc_tiny")),
                         engine="onnx")
    with server(Models.load(choice)) as address:
        replies = client(address, {"mode": "offline", "wav_name": "pub_concat"}, pcm("pub_concat.wav"))
    check_pipeline_result(replies[-1])


U2_MODEL = MODELS / "u2pp_conformer_tiny"


def u2_direct(task, audio, chunk_frames: int, left: int) -> list[str]:
    """The U2 stream's cumulative texts decoded alone, one decode per whole 600 ms of audio and one after the end."""
    stream = task.create_stream(decoding_chunk_size=chunk_frames, num_decoding_left_chunks=left)
    out, whole = [], len(audio) // 9600 * 9600
    for i in range(0, whole, 9600):
        stream.accept_waveform(audio[i : i + 9600])
        out.append(task.decode_stream(stream)["text"])
    stream.accept_waveform(audio[whole:])
    stream.input_finished()
    return out + [task.decode_stream(stream)["text"]]


def test_u2_model_streams_online_and_2pass(models):
    """A WeNet U2++ model as the online model: chunk_size[1] x 60 ms becomes its decoding chunk (15 encoder frames of
    40 ms), encoder_chunk_look_back its left chunks; its cumulative best prefix goes out as new text per message."""
    u2 = Models.load(ModelChoice(model=str(MODELS / "bicif_paraformer_tiny"), online_model=str(U2_MODEL),
                                 vad_model=str(BUNDLED_VAD), punc_model=None))
    audio = sf.read(AUDIO / "sample.wav", dtype="float32")[0]
    direct = u2_direct(u2.online, audio, 15, 4)
    with server(u2) as address:
        online = client(address, {"mode": "online", "chunk_size": [5, 10, 5], "wav_name": "u2"}, pcm("sample.wav"))
        twopass = client(address, {"mode": "2pass", "chunk_size": "5,10,5", "wav_name": "u2"}, pcm("example.wav"))
    grown = [t for j, t in enumerate(direct[:-1]) if t != (direct[j - 1] if j else "")]
    assert [r["text"] for r in online[:-1]] == [t[len(p):] for p, t in zip(["", *grown], grown)]
    assert "".join(r["text"] for r in online) == direct[-1] != ""  # this clip's prefix only grows
    assert online[-1]["is_final"] is True and not any(r["is_final"] for r in online[:-1])
    partials = [r for r in twopass if r["mode"] == "2pass-online"]
    finals = [r for r in twopass if r["mode"] == "2pass-offline"]
    assert partials and all(r["text"] for r in partials) and finals[-1]["is_final"] is True
    assert {r["index"] for r in partials} <= {r["index"] for r in finals}


@needs_streaming
def test_streaming_model_as_the_offline_model_too(models):
    """One streaming Paraformer for both passes of 2pass (its whole-segment decoding in the second pass)."""
    one = Models.load(ModelChoice(model=str(STREAMING_MODEL), online_model=str(STREAMING_MODEL), vad_model=str(BUNDLED_VAD),
                                  punc_model=None))
    assert one.asr is one.online  # loaded once
    with server(one) as address:
        replies = client(address, {"mode": "2pass", "chunk_size": [0, 10, 5], "wav_name": "s"}, pcm("example.wav"))
    finals = [r for r in replies if r["mode"] == "2pass-offline"]
    assert finals and finals[-1]["is_final"] is True and not any("error" in r for r in replies)
    audio = sf.read(AUDIO / "example.wav", dtype="float32")[0]
    whole = one.asr([AudioItem("s", audio[r["start_time"] * 16 : r["end_time"] * 16]) for r in finals[:1]],
                    one.offline.options({}).stream)[0]["text"]
    assert finals[0]["text"] == whole


@needs_streaming
def test_stream_batcher_decodes_each_task_in_its_own_batches(models):
    """Many connections' chunks of two tasks: each task's requests are decoded in batches of their own (one lane per
    task, a batch split in parts decoded at once on two threads), and every stream gets what decoding it alone gives."""
    names = ("pub_concat.wav", "sample.wav", "example.wav") * 3
    audio = [sf.read(AUDIO / name, dtype="float32")[0][i * 4000 : i * 4000 + 48000] for i, name in enumerate(names)]

    def fresh() -> tuple[list, list]:
        vad = [models.vad.create_stream(chunk_ms=60, streaming=True) for _ in audio]
        asr = [models.online.create_stream(chunk_size=[5, 10, 5]) for _ in audio]
        for v, a, wav in zip(vad, asr, audio):
            v.accept_waveform(wav)
            a.accept_waveform(wav)
        return vad, asr

    vad, asr = fresh()
    alone = [models.vad.decode_stream(s) for s in vad], [models.online.decode_stream(s) for s in asr]

    async def together() -> tuple[list, list, int, StreamBatcher]:
        batcher = StreamBatcher(threads=2)
        batcher.start()
        vad, asr = fresh()
        try:
            got = await asyncio.gather(*(batcher.decode(models.vad, s) for s in vad), *(batcher.decode(models.online, s) for s in asr))
            batches = batcher.batches
        finally:
            await batcher.stop()
        return got[: len(vad)], got[len(vad) :], batches, batcher

    vad_got, asr_got, batches, batcher = asyncio.run(together())
    assert (vad_got, asr_got) == alone and all(alone[0]) and all(r["text"] for r in alone[1])
    assert batches == 2 and batcher.parts(len(audio)) == 2  # all nine streams of a task in one batch, in two parts
    assert batcher.lanes == {} and not batcher.started  # stopped: lanes and their threads are gone


class GatedTask:
    """A task whose decoding of the stream named "slow" waits for ``release``; every stream decodes to its name."""

    def __init__(self) -> None:
        self.release, self.started = threading.Event(), threading.Event()

    def decode_streams(self, streams: list) -> list:
        if "slow" in streams:
            self.started.set()
            assert self.release.wait(30)
        return [f"decoded {s}" for s in streams]


def test_stream_batcher_takes_new_chunks_while_a_batch_is_still_decoding():
    """A chunk that arrives while another thread of the lane is busy is decoded at once, not after that batch."""
    task = GatedTask()

    async def run() -> tuple[str, bool, str]:
        batcher = StreamBatcher(threads=2)
        batcher.start()
        try:
            slow = asyncio.ensure_future(batcher.decode(task, "slow"))
            while not task.started.is_set():
                await asyncio.sleep(0.01)
            fast = await asyncio.wait_for(batcher.decode(task, "fast"), 10)
            slow_pending = not slow.done()
            task.release.set()
            return fast, slow_pending, await asyncio.wait_for(slow, 10)
        finally:
            task.release.set()
            await batcher.stop()

    assert asyncio.run(run()) == ("decoded fast", True, "decoded slow")


def test_recent_audio_keeps_what_segments_still_need():
    recent = RecentAudio()
    for start in range(0, 10000, 960):  # 60 ms frames
        recent.append(np.arange(start, min(start + 960, 10000), dtype=np.float32))
    assert recent.get(1000, 3000).tolist() == list(range(1000, 3000))
    recent.drop_before(2000)  # pieces ending at or before sample 2000 go; the one holding it stays
    assert recent.start == 1920 and recent.get(0, 2100).tolist() == list(range(1920, 2100))
    assert recent.get(9500, 20000).tolist() == list(range(9500, 10000))


def test_the_model_folders_lm_is_loaded_with_the_server():
    """The bundled model's n-gram LM loads with the models, not in the first connection's first segment."""
    from funasr.lm import kenlm_installed

    if not kenlm_installed():
        pytest.skip("kenlm is not installed (the lm extra)")
    loaded = Models.load(ModelChoice(model="paraformer-zh-small", online_model=None, vad_model=str(BUNDLED_VAD), punc_model=None))
    assert [Path(path).name for path, _ in loaded.asr._lms._loaded] == ["lm.arpa.gz"]


def test_lane_threads_follow_the_cpus_a_container_allows(tmp_path):
    v2, v1 = tmp_path / "v2", tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    v2.mkdir()
    (v2 / "cpu.max").write_text("150000 100000\n")  # docker --cpus=1.5
    assert cgroup_cpu_quota(v2) == 1.5 and cores(v2) == min(2, cores(tmp_path / "none"))
    (v2 / "cpu.max").write_text("max 100000\n")
    assert cgroup_cpu_quota(v2) is None and cores(v2) == cores(tmp_path / "none")
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("100000\n")
    (v1 / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert cgroup_cpu_quota(v1) == 1.0 and cores(v1) == 1
    (v1 / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(v1) is None and cgroup_cpu_quota(tmp_path / "none") is None
