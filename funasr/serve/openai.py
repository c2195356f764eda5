"""OpenAI-compatible HTTP API on the offline pipeline: ``POST /v1/audio/transcriptions``, ``GET /v1/models``, ``GET /health``."""
from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from funasr.audio import decode_source, has_container_magic
from funasr.errors import AudioError
from funasr.errors import FunASRError
from funasr.writers import srt_cues, srt_time, to_srt

if TYPE_CHECKING:
    from funasr.serve.app import Server

FORMATS = ("json", "text", "verbose_json", "srt", "vtt")
ALIASES = ("whisper-1", "")  # model names OpenAI clients send: the server's model


def error(message: str, status: int, param: str = "") -> JSONResponse:
    """OpenAI's error shape."""
    return JSONResponse({"error": {"message": message, "type": "invalid_request_error", "param": param or None, "code": None}},
                        status_code=status)


def vtt_time(ms: int) -> str:
    """Milliseconds as a WebVTT time stamp ``HH:MM:SS.mmm``."""
    return srt_time(ms).replace(",", ".")


def to_vtt(result: dict) -> str:
    """The result as WebVTT captions."""
    cues = [f"{vtt_time(b)} --> {vtt_time(e)}\n{text}\n" for b, e, text in srt_cues(result)]
    return "WEBVTT\n\n" + "\n".join(cues)


def verbose(result: dict, duration_s: float) -> dict:
    """OpenAI's ``verbose_json``: the text, the duration and timed segments (seconds)."""
    segments = [{"id": i, "start": b / 1000, "end": e / 1000, "text": text}
                for i, (b, e, text) in enumerate(srt_cues(result))]
    return {"task": "transcribe", "language": "zh", "duration": round(duration_s, 3), "text": result.get("text", ""),
            "segments": segments}


def add_routes(app: FastAPI, server: "Server") -> None:
    """The HTTP API's routes on ``app``."""
    from funasr.serve.app import check

    models = server.models

    @app.get("/health")
    def health(request: Request) -> Any:
        refused = check(request, server)
        if refused is not None:
            return refused
        return {"status": "ok", "device": models.choice.device, "engine": models.choice.engine,
                "models_loaded": models.names(), "modes": list(models.modes), "connections": server.connections}

    @app.get("/v1/models")
    def list_models(request: Request) -> Any:
        refused = check(request, server)
        if refused is not None:
            return refused
        return {"object": "list", "data": [{"id": models.choice.model, "object": "model", "owned_by": "funasr"}]}

    @app.post("/v1/audio/transcriptions")
    async def transcribe(request: Request) -> Any:
        refused = check(request, server)
        if refused is not None:
            return refused
        length = request.headers.get("content-length")
        if length is None or not length.isdigit():
            return error("send the upload with a Content-Length header", 411)
        if int(length) > server.config.max_upload_bytes:
            return error(f"upload of {length} bytes is larger than this server's {server.config.max_upload_bytes} bytes", 413, "file")
        try:
            form = await request.form(max_files=1, max_fields=16)
        except HTTPException as e:  # starlette's multipart limits (a second file, too many fields): OpenAI's shape
            return error(f"{str(e.detail).rstrip('.')}: send one audio file in the field 'file'", 400, "file")
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            return error("multipart field 'file' (the audio file) is missing", 400, "file")
        fmt = str(form.get("response_format") or "json")
        if fmt not in FORMATS:
            return error(f"response_format={fmt!r} is not supported: use one of {', '.join(FORMATS)}", 400, "response_format")
        model = str(form.get("model") or "")
        if model not in (*ALIASES, models.choice.model):
            return error(f"model={model!r} is not served here: use {models.choice.model!r} (or whisper-1)", 404, "model")
        data = await upload.read()
        hotword = str(form.get("prompt") or form.get("hotwords") or "").strip() or None
        try:
            result, seconds = await asyncio.get_running_loop().run_in_executor(server.pool, run_offline, server, data, hotword)
        except FunASRError as e:
            return error(str(e), 400, "file")
        if fmt == "text":
            return PlainTextResponse(result.get("text", ""))
        if fmt == "srt":
            return PlainTextResponse(to_srt(result), media_type="application/x-subrip")
        if fmt == "vtt":
            return PlainTextResponse(to_vtt(result), media_type="text/vtt")
        if fmt == "verbose_json":
            return Response(json.dumps(verbose(result, seconds), ensure_ascii=False), media_type="application/json")
        return Response(json.dumps({"text": result.get("text", "")}, ensure_ascii=False), media_type="application/json")


def run_offline(server: "Server", data: bytes, hotword: Any) -> tuple[dict, float]:
    """Worker thread: the offline pipeline on an uploaded file; (result, seconds of audio)."""
    if not data:
        raise AudioError("the uploaded file is empty (0 bytes); send the audio file's contents")
    if not has_container_magic(data[:4096]):
        raise AudioError("the uploaded file is not an audio file this server reads (WAV, FLAC, OGG/Opus, MP3, MP4/M4A)")
    runner = server.models.offline
    opts = runner.options({"hotword": hotword, "sentence_timestamp": True})
    sources, _ = runner.sources(data)
    waveform = decode_source(sources[0])  # decoded once: the duration, then the pipeline
    sources, _ = runner.sources(waveform)
    result = next(runner.results(sources, True, opts))
    return result, len(waveform) / 16000
