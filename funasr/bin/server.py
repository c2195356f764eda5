"""The ``funasr-server`` command: FunASR's WebSocket protocol, an OpenAI-compatible HTTP API and a browser page."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Optional, Sequence

from funasr.engines import ENGINES
from funasr.errors import FunASRError

log = logging.getLogger("funasr.server")

EXAMPLES = """\
examples:
  funasr-server                                        (CPU, PyTorch, http://127.0.0.1:10095/)
  funasr-server --device cuda --host 0.0.0.0 --certfile cert.pem --keyfile key.pem --token-file token.txt
  funasr-server --engine onnx --quantize --model ./paraformer-onnx --online-model ./streaming-onnx \\
      --vad-model ./fsmn-vad-onnx --punc-model ./ct-punc-onnx
  python funasr_wss_client.py --host 127.0.0.1 --port 10095 --mode 2pass --ssl 0   (FunASR's own client)
"""


def _model(value: str) -> Optional[str]:
    return None if value.lower() in ("", "none") else value


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Command-line arguments."""
    p = argparse.ArgumentParser(prog="funasr-server", description=__doc__, epilog=EXAMPLES,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    m = p.add_argument_group("models (names, hub ids or folders, as AutoModel takes them; 'none' leaves one out)")
    m.add_argument("--model", default="paraformer-zh", help="offline / second-pass ASR model (default: paraformer-zh)")
    m.add_argument("--online-model", type=_model, default="paraformer-zh-streaming", help="streaming ASR model")
    m.add_argument("--vad-model", type=_model, default="fsmn-vad", help="VAD model (offline pipeline and 2pass)")
    m.add_argument("--punc-model", type=_model, default="ct-punc", help="punctuation model")
    m.add_argument("--realtime-punc-model", type=_model, default=None,
                   help="realtime punctuation with a per-connection cache for 2pass (default: --punc-model per segment)")
    m.add_argument("--engine", choices=ENGINES, default="torch", help="PyTorch, or onnxruntime over exported folders")
    m.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    m.add_argument("--quantize", action="store_true", help="onnx: run the int8 graphs")
    m.add_argument("--ncpu", type=int, default=1, help="threads per model run (default 1: connections run in parallel instead)")
    m.add_argument("--hub", default="hf", choices=["hf", "ms"], help="model hub for names")
    m.add_argument("--max-end-silence-ms", type=int, default=None,
                   help="2pass: silence (ms) that ends a sentence, fixed (default: the VAD model's schedule, 2000 ms for "
                        "short utterances as in FunASR's Python server; FunASR's C++ runtime uses 800)")
    s = p.add_argument_group("serving")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 for every interface)")
    s.add_argument("--port", type=int, default=10095)
    s.add_argument("--certfile", help="TLS certificate (PEM); with --keyfile: wss:// and https://")
    s.add_argument("--keyfile", help="TLS private key (PEM)")
    s.add_argument("--token-file", help="file holding the bearer token both APIs require (or $FUNASR_SERVER_TOKEN)")
    s.add_argument("--cors-origin", action="append", default=[], help="allowed browser origin (repeatable; '*' for any)")
    s.add_argument("--max-connections", type=int, default=64)
    s.add_argument("--max-message-bytes", type=int, default=1 << 20, help="largest WebSocket message")
    s.add_argument("--max-upload-mb", type=float, default=100, help="largest HTTP upload")
    s.add_argument("--max-audio-s", type=float, default=3600, help="audio one connection may send")
    s.add_argument("--idle-timeout-s", type=float, default=30, help="close a connection silent this long")
    s.add_argument("--workers", type=int, default=2, help="offline passes at once")
    s.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    args = p.parse_args(argv)
    if bool(args.certfile) != bool(args.keyfile):
        p.error("--certfile and --keyfile go together")
    for name in ("max_connections", "max_message_bytes", "workers", "port", "ncpu"):
        if getattr(args, name) < (0 if name == "port" else 1):
            p.error(f"--{name.replace('_', '-')} must be positive")
    return args


def read_token(args: argparse.Namespace) -> Optional[str]:
    """The bearer token: from ``--token-file``, else ``$FUNASR_SERVER_TOKEN``, else none."""
    if args.token_file:
        with open(args.token_file, encoding="utf-8") as f:
            token = f.read().strip()
        if not token:
            raise FunASRError(f"--token-file {args.token_file} is empty")
        return token
    return os.environ.get("FUNASR_SERVER_TOKEN") or None


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Load the models once, then serve until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvicorn
        from threadpoolctl import threadpool_limits

        from funasr.serve.app import ServerConfig, create_app
        from funasr.serve.models import ModelChoice, Models
        from funasr.serve.session import Limits
    except ImportError as e:
        print(f"funasr-server: {e}; install the server's packages: pip install 'funasr[serve]'", file=sys.stderr)
        return 2
    # numpy's BLAS on one thread: the server runs its own threads, and OpenBLAS's idle workers spin after each
    # larger product (the fbank of a batch of streams), which took a whole core from the engines.
    threadpool_limits(1, user_api="blas")
    try:
        choice = ModelChoice(model=args.model, online_model=args.online_model, vad_model=args.vad_model,
                             punc_model=args.punc_model, realtime_punc_model=args.realtime_punc_model, engine=args.engine,
                             device=args.device, quantize=args.quantize, ncpu=args.ncpu, hub=args.hub,
                             max_end_silence_ms=args.max_end_silence_ms)
        models = Models.load(choice)
        config = ServerConfig(token=read_token(args), max_connections=args.max_connections,
                              max_message_bytes=args.max_message_bytes, max_upload_bytes=int(args.max_upload_mb * (1 << 20)),
                              workers=args.workers, cors_origins=tuple(args.cors_origin),
                              limits=Limits(max_audio_s=args.max_audio_s, idle_timeout_s=args.idle_timeout_s))
    except (FunASRError, OSError) as e:
        print(f"funasr-server: {e}", file=sys.stderr)
        return 1
    scheme = "https" if args.certfile else "http"
    if not args.certfile:
        log.warning("TLS is off: serving plain ws:// and http:// (FunASR's server defaults to TLS; "
                    "pass --certfile and --keyfile for wss:// and https://)")
    log.info("modes %s; page %s://%s:%d/; token %s", ", ".join(models.modes), scheme, args.host, args.port,
             "required" if config.token else "not required")
    uvicorn.run(create_app(models, config), host=args.host, port=args.port, ssl_certfile=args.certfile,
                ssl_keyfile=args.keyfile, ws="websockets-sansio", ws_max_size=args.max_message_bytes,
                ws_ping_interval=20, ws_ping_timeout=20, log_level=args.log_level, lifespan="on")
    return 0


if __name__ == "__main__":
    sys.exit(main())
