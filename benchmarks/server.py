"""funasr-server under load: N simulated FunASR clients on loopback streaming real audio at real-time pace.

For each N it starts one server process (``funasr-server`` with the models given), runs N clients
that each send ``--seconds`` of speech (the fixture clips with gaps) as 1920-byte frames every 60 ms,
then ``{"is_speaking": false}``, and prints: partial-result latency p50/p95 (from the moment the
audio completing a 600 ms chunk was sent to the arrival of its text; chunks are counted as the server counts
them, anew after each VAD segment, see ``chunk_ends``), final-result latency (from
the moment the end of a VAD segment was sent to its ``2pass-offline`` text), the server's CPU use
(percent of one core) and peak RSS, and errors (error messages, failed or cut connections, late
frames: the client fell behind real time by more than a second, i.e. audio was not taken in time).

    nice -n 19 python benchmarks/server.py --clients 1 4 8 16 32 --seconds 20
    nice -n 19 python benchmarks/server.py --engine onnx --quantize --model EXPORTED_ASR --online-model EXPORTED_ONLINE ...
    python benchmarks/server.py --models small --clients 16 32 64     # the model sets of docs/benchmarks.md ("Server"),
    python benchmarks/server.py --models large --clients 4 8 16       # exported once into --work (ONNX int8)
    python benchmarks/server.py --models large --clients 16 --independent  # own recordings, starts spread over 600 ms
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, long_recording  # noqa: E402

MODELS = ROOT / "tests" / "fixtures" / "parity" / "models"
FRAME = 960  # samples per message: 60 ms
CHUNK = 9600  # samples per streaming chunk: 600 ms ([5, 10, 5])


@dataclass
class Stats:
    """What the clients of one run saw."""

    partial_ms: list = field(default_factory=list)
    final_ms: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    late_frames: int = 0


def chunk_ends(args: argparse.Namespace, audio: bytes) -> list[int]:
    """The frames whose arrival completes a chunk of the online model, as the server counts them (FunASR's rule): every
    10th frame, counted anew after the frame at which (in 2pass mode) the server's VAD closes a segment. Found by
    running the server's VAD (same model, engine and 60 ms steps) over the audio."""
    frames = len(audio) // (2 * FRAME)
    per_chunk = CHUNK // FRAME
    if args.mode != "2pass":
        return list(range(per_chunk - 1, frames, per_chunk))
    sys.path.insert(0, str(ROOT / "runtime" / "python"))
    from funasr.serve.models import ModelChoice, load_task

    vad = load_task(args.vad_model, ModelChoice(engine=args.engine, quantize=args.quantize))
    stream = vad.create_stream(chunk_ms=FRAME // 16, streaming=True)
    samples = np.frombuffer(audio, dtype="<i2").astype(np.float32) / 32768.0
    ends, pending, in_segment = [], 0, False
    for i in range(frames):
        pending += FRAME
        if pending >= CHUNK:  # the online model decodes before the VAD runs on the same frame
            pending = 0
            ends.append(i)
        stream.accept_waveform(samples[i * FRAME : (i + 1) * FRAME])
        for beg, end in vad.decode_stream(stream):
            in_segment = in_segment or beg >= 0
            if end >= 0 and in_segment:  # a new sentence: its online stream starts from the next frame
                in_segment, pending = False, 0
    return ends


async def one_client(url: str, audio: bytes, stats: Stats, mode: str, name: str, ends: list[int], offset: float = 0.0) -> None:
    """FunASR's client protocol at real-time pace, from ``offset`` s after connecting; latencies into ``stats``."""
    import websockets

    sent_at: list[float] = []  # wall time at which each frame was sent
    try:
        async with websockets.connect(url, subprotocols=["binary"], max_size=None, open_timeout=60) as ws:
            await ws.send(json.dumps({"mode": mode, "chunk_size": [5, 10, 5], "chunk_interval": 10, "wav_name": name,
                                      "wav_format": "pcm", "is_speaking": True, "encoder_chunk_look_back": 4,
                                      "decoder_chunk_look_back": 0}))

            async def reader() -> None:
                async for raw in ws:
                    now = time.monotonic()
                    message = json.loads(raw)
                    if message.get("error"):
                        stats.errors.append(message["error"])
                    elif message["mode"] in ("2pass-online", "online") and sent_at:
                        frame = ends[max(0, bisect.bisect_right(ends, len(sent_at) - 1) - 1)]  # the last chunk sent
                        stats.partial_ms.append(1000 * (now - sent_at[min(frame, len(sent_at) - 1)]))
                    elif message["mode"] == "2pass-offline" and message.get("end_time") and message.get("text"):
                        frame = min(len(sent_at) - 1, int(message["end_time"]) * 16 // FRAME)
                        stats.final_ms.append(1000 * (now - sent_at[frame]))
                    if message.get("is_final"):
                        return

            reading = asyncio.create_task(reader())
            await asyncio.sleep(offset)
            start = time.monotonic()
            step = 2 * FRAME
            for i in range(0, len(audio), step):
                target = start + (i // step) * FRAME / 16000
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -1.0:
                    stats.late_frames += 1
                await ws.send(audio[i : i + step])
                sent_at.append(time.monotonic())
            await ws.send(json.dumps({"is_speaking": False}))
            await asyncio.wait_for(reading, timeout=120)
    except Exception as e:  # a refused, cut or timed-out connection
        stats.errors.append(f"{type(e).__name__}: {e}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proc_stats(pid: int) -> tuple[float, float]:
    """(CPU seconds used, peak RSS MiB) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    hwm = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM"))
    return cpu, int(hwm.split()[1]) / 1024


def server_args(args: argparse.Namespace, port: int) -> list[str]:
    out = [sys.executable, "-m", "funasr.bin.server", "--port", str(port), "--engine", args.engine, "--model", args.model,
           "--online-model", args.online_model, "--vad-model", args.vad_model, "--punc-model", args.punc_model,
           "--max-connections", "1000", "--log-level", "warning", "--workers", str(args.workers), "--ncpu", str(args.ncpu)]
    return out + (["--quantize"] if args.quantize else [])


def prepare_models(size: str, work: Path) -> dict[str, str]:
    """The ONNX int8 folders of a model set, exported once into ``work``. ``small``: partials from a random-weight
    streaming Paraformer with paraformer-zh-small's dimensions (there is no trained streaming one), the second pass on
    the bundled paraformer-zh-small (with its LM); ``large``: the random streaming Paraformer-large of
    benchmarks/streaming.py and the random Paraformer-large of benchmarks/asr.py. Both with fsmn-vad and
    ct-punc-zh-small."""
    sys.path.insert(0, str(ROOT / "runtime" / "python"))
    from asr import build_model
    from common import random_model_dir
    from streaming import streaming_config

    from funasr.auto_model import AutoModel

    folder = work / size
    streaming = folder / "streaming"
    if not (streaming / "model.pt").is_file():
        dims = {"width": 256, "ff": 768, "blocks": 8, "decoder_blocks": 3} if size == "small" else {}
        random_model_dir(streaming_config(folder / "streaming.yaml", **dims), streaming, vocab_size=3486 if size == "small" else 8404)
    offline = "paraformer-zh-small" if size == "small" else str(build_model(folder / "offline"))
    sources = {"online_model": str(streaming), "model": offline, "vad_model": "fsmn-vad", "punc_model": "ct-punc-zh-small"}
    out = {}
    for key, src in sources.items():
        out[key] = str(folder / f"onnx_{key}")
        if not (Path(out[key]) / "config.yaml").is_file():
            print(f"exporting {src} ...", file=sys.stderr, flush=True)
            AutoModel(model=src, device="cpu", disable_pbar=True).export(type="onnx", quantize=True, output_dir=out[key])
    return out


def run(args: argparse.Namespace, n: int, audios: list[bytes], ends: list[list[int]]) -> dict:
    """One server, ``n`` clients; the figures of the table row."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "runtime" / "python"), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(server_args(args, port), env=env)
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.5)
        cpu0, _ = proc_stats(proc.pid)
        stats = Stats()
        t0 = time.monotonic()

        async def all_clients() -> None:
            spread = CHUNK / 16000 if args.independent else 0.0
            await asyncio.gather(*(one_client(f"ws://127.0.0.1:{port}/", audios[i % len(audios)], stats, args.mode, f"c{i}",
                                              ends[i % len(ends)], i * spread / n) for i in range(n)))

        asyncio.run(all_clients())
        wall = time.monotonic() - t0
        cpu1, rss = proc_stats(proc.pid)
    finally:
        proc.terminate()
        proc.wait(30)
    pct = lambda xs, q: float(np.percentile(xs, q)) if xs else float("nan")  # noqa: E731
    return {"clients": n, "partial_p50": pct(stats.partial_ms, 50), "partial_p95": pct(stats.partial_ms, 95),
            "final_p50": pct(stats.final_ms, 50), "final_p95": pct(stats.final_ms, 95), "cpu_pct": 100 * (cpu1 - cpu0) / wall,
            "rss_mib": rss, "errors": len(stats.errors) + stats.late_frames, "first_error": stats.errors[:1]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 8, 16, 32])
    p.add_argument("--seconds", type=float, default=20.0, help="audio each client streams (bounded run)")
    p.add_argument("--mode", default="2pass", choices=["2pass", "online", "offline"])
    p.add_argument("--engine", default="torch", choices=["torch", "onnx"])
    p.add_argument("--quantize", action="store_true")
    p.add_argument("--model", default=str(MODELS / "bicif_paraformer_tiny"))
    p.add_argument("--online-model", default=str(MODELS / "paraformer_streaming_tiny")
                   if (MODELS / "paraformer_streaming_tiny").is_dir() else "none")
    p.add_argument("--vad-model", default="fsmn-vad")
    p.add_argument("--punc-model", default=str(MODELS / "ct_punc_tiny"))
    p.add_argument("--models", choices=["small", "large"], help="a prepared model set (ONNX int8) instead of the model options")
    p.add_argument("--work", type=Path, default=Path("/tmp/funasr-bench-server"), help="where --models exports its folders")
    p.add_argument("--independent", action="store_true",
                   help="clients as independent users: each its own recording (the clips in another order), client i "
                        "starting i/N of a 600 ms chunk after the first; default: all clients send the same recording, "
                        "starting at once, so every chunk and every sentence end of all clients arrives together (the worst case)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--ncpu", type=int, default=1)
    args = p.parse_args()
    if max(args.clients) > 64 or args.seconds > 120:
        p.error("bounded runs only: at most 64 clients and 120 s of audio each")
    if args.models:
        vars(args).update(prepare_models(args.models, args.work), engine="onnx", quantize=True)
    seeds = range(1, 1 + (max(args.clients) if args.independent else 1))
    audios = [(np.clip(long_recording(args.seconds, seed=seed), -1, 1) * 32767).astype("<i2").tobytes() for seed in seeds]
    ends = [chunk_ends(args, audio) for audio in audios]
    print(f"mode {args.mode}, engine {args.engine}{' int8' if args.quantize else ''}, {args.seconds:g} s per client, "
          f"model {Path(args.model).name}, online {Path(args.online_model).name}, "
          f"{'independent clients' if args.independent else 'all clients sending the same audio at once'}")
    print("| clients | partial p50 (ms) | partial p95 (ms) | final p50 (ms) | final p95 (ms) | server CPU (% of a core) | RSS (MiB) | errors |")
    print("|---|---|---|---|---|---|---|---|")
    for n in args.clients:
        r = run(args, n, audios, ends)
        print(f"| {n} | {r['partial_p50']:.0f} | {r['partial_p95']:.0f} | {r['final_p50']:.0f} | {r['final_p95']:.0f} | "
              f"{r['cpu_pct']:.0f} | {r['rss_mib']:.0f} | {r['errors']} |", flush=True)
        if r["first_error"]:
            print(f"  first error: {r['first_error'][0]}", file=sys.stderr)


if __name__ == "__main__":
    main()
