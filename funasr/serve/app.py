"""The server: FunASR's WebSocket protocol, an OpenAI-compatible HTTP API and a browser page, in one FastAPI app."""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Iterator, Optional
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse

from funasr.serve.batcher import StreamBatcher
from funasr.serve.models import Models
from funasr.serve.protocol import NOT_PCM, ProtocolError, reply
from funasr.serve.session import Connection, Limits

log = logging.getLogger(__name__)

# WebSocket close codes
NORMAL, POLICY, UNSUPPORTED, TOO_BIG, TRY_AGAIN = 1000, 1008, 1003, 1009, 1013


@dataclass(frozen=True)
class ServerConfig:
    """Everything about serving that is not a model."""

    token: Optional[str] = None  # bearer token required by both APIs when set
    max_connections: int = 64
    max_message_bytes: int = 1 << 20  # one WebSocket message
    max_upload_bytes: int = 100 << 20  # one HTTP upload
    workers: int = 2  # offline passes at once
    cors_origins: tuple[str, ...] = ()
    limits: Limits = field(default_factory=Limits)
    send_timeout_s: float = 10.0  # a result not taken by the client within this: the connection is closed


class SlowReader(Exception):
    """The client does not read its results."""


class Server:
    """State shared by every request: models, the stream batcher, the worker pool, the connection count."""

    def __init__(self, models: Models, config: ServerConfig) -> None:
        self.models, self.config = models, config
        self.batcher = StreamBatcher()
        self.pool = ThreadPoolExecutor(max_workers=config.workers, thread_name_prefix="funasr-offline")
        self.connections = 0

    def authorized(self, header: Optional[str], query_token: Optional[str] = None) -> bool:
        """Whether the request carries the bearer token (``Authorization: Bearer ...``, or ``?token=`` for browsers)."""
        if not self.config.token:
            return True
        given = header[7:] if header and header.lower().startswith("bearer ") else query_token
        return given is not None and hmac.compare_digest(given.encode(), self.config.token.encode())

    def origin_allowed(self, origin: Optional[str], host: Optional[str]) -> bool:
        """A browser's WebSocket from another site is refused unless its origin is configured (CORS origins)."""
        if not origin or "*" in self.config.cors_origins or origin in self.config.cors_origins:
            return True
        return urlsplit(origin).netloc == host

    async def websocket(self, ws: WebSocket) -> None:
        """One FunASR protocol connection, from accept to close."""
        subprotocol = "binary" if "binary" in ws.scope.get("subprotocols", []) else None
        refusal = None
        if not self.authorized(ws.headers.get("authorization"), ws.query_params.get("token")):
            refusal = (POLICY, "unauthorized: pass the server's token (Authorization: Bearer ... or ?token=...)")
        elif not self.origin_allowed(ws.headers.get("origin"), ws.headers.get("host")):
            refusal = (POLICY, f"origin {ws.headers.get('origin')} is not allowed (see --cors-origin)")
        elif self.connections >= self.config.max_connections:
            refusal = (TRY_AGAIN, f"server full: {self.config.max_connections} connections; try again later")
        await ws.accept(subprotocol=subprotocol)
        if refusal is not None:
            log.info("refusing a connection: %s", refusal[1])
            await ws.close(*refusal)
            return
        self.connections += 1
        try:
            await self._serve(ws)
        finally:
            self.connections -= 1

    async def _serve(self, ws: WebSocket) -> None:
        outbox: asyncio.Queue = asyncio.Queue(maxsize=self.config.limits.max_pending_results)
        closed = asyncio.Event()

        def send(message: dict) -> None:
            if closed.is_set():
                return
            try:
                outbox.put_nowait(message)
            except asyncio.QueueFull:
                closed.set()

        async def sender() -> None:
            while True:
                message = await outbox.get()
                await asyncio.wait_for(ws.send_text(json.dumps(message, ensure_ascii=False)), self.config.send_timeout_s)

        conn = Connection(self.models, self.batcher, self.pool, self.config.limits, send)
        writer = asyncio.create_task(sender())
        reason: tuple[int, str] = (NORMAL, "")
        try:
            while not closed.is_set():
                receive = asyncio.create_task(ws.receive())
                done, _ = await asyncio.wait({receive, writer}, timeout=self.config.limits.idle_timeout_s,
                                             return_when=asyncio.FIRST_COMPLETED)
                if writer in done:
                    receive.cancel()
                    raise SlowReader
                if receive not in done:
                    receive.cancel()
                    if conn.busy:  # results still being computed: the client is waiting for them, not idle
                        continue
                    reason = (NORMAL, f"idle timeout: nothing received for {self.config.limits.idle_timeout_s:g} s")
                    break
                message = receive.result()
                if message["type"] == "websocket.disconnect":
                    conn.close()
                    writer.cancel()
                    return
                if message.get("text") is not None:
                    await conn.on_text(message["text"])
                elif message.get("bytes") is not None:
                    await conn.on_audio(message["bytes"])
            if closed.is_set():
                raise SlowReader
            await conn.drain()
        except ProtocolError as e:
            text = str(e)
            code = UNSUPPORTED if text == NOT_PCM else TOO_BIG if "longer than" in text else POLICY
            send(reply(conn.config.mode if conn.config else "", "", conn.config.wav_name if conn.config else "", True, error=text))
            reason = (code, _reason(text))
        except (SlowReader, asyncio.TimeoutError):
            reason = (POLICY, "client does not read its results")
            closed.set()
        except WebSocketDisconnect:
            conn.close()
            writer.cancel()
            return
        except Exception as e:  # a decoding failure: this connection ends, the others go on
            log.exception("connection failed")
            send(reply(conn.config.mode if conn.config else "", "", "", True, error=f"server error: {type(e).__name__}: {e}"))
            reason = (1011, "server error")
        await self._close(ws, conn, writer, outbox, closed, reason)

    async def _close(self, ws: WebSocket, conn: Connection, writer: asyncio.Task, outbox: asyncio.Queue,
                     closed: asyncio.Event, reason: tuple[int, str]) -> None:
        """Flush what the client still has to get (unless it does not read), then close."""
        conn.close()
        if not closed.is_set():
            deadline = asyncio.get_running_loop().time() + self.config.send_timeout_s
            while not outbox.empty() and not writer.done() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.01)
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        try:
            await asyncio.wait_for(ws.close(*reason), 1.0)
        except Exception:  # the client is gone already
            pass


def _reason(text: str) -> str:
    """A close reason: at most 123 bytes of UTF-8."""
    data = text.encode()
    return text if len(data) <= 123 else data[:120].decode(errors="ignore") + "..."


def create_app(models: Models, config: ServerConfig = ServerConfig()) -> FastAPI:
    """The FastAPI application: ``/`` (page and WebSocket), ``/v1/audio/transcriptions``, ``/v1/models``, ``/health``."""
    from funasr.serve import openai

    server = Server(models, config)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        server.batcher.start()
        yield
        await server.batcher.stop()
        server.pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="funasr-server", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.server = server
    if config.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Authorization", "Content-Type"])

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files("funasr.serve").joinpath("static/index.html").read_text(encoding="utf-8")

    app.add_api_websocket_route("/", server.websocket)
    openai.add_routes(app, server)
    return app


def unauthorized() -> JSONResponse:
    """OpenAI's error shape for a missing or wrong token."""
    return JSONResponse({"error": {"message": "missing or wrong bearer token (Authorization: Bearer <token>)",
                                   "type": "invalid_request_error", "code": "invalid_api_key"}}, status_code=401)


def check(request: Request, server: Server) -> Optional[JSONResponse]:
    """The token check of the HTTP API (None: allowed)."""
    return None if server.authorized(request.headers.get("authorization")) else unauthorized()



@contextmanager
def serving(app: FastAPI, host: str = "127.0.0.1", port: int = 0, max_message_bytes: int = 1 << 20,
            ssl: Optional[tuple[str, str]] = None, send_buffer_bytes: Optional[int] = None) -> Iterator[int]:
    """Run ``app`` with uvicorn in a background thread (tests, benchmarks); yields the bound port.

    ``send_buffer_bytes`` sets the kernel send buffer of the accepted sockets (a small one shows a slow reader soon).
    """
    import socket
    import threading

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if send_buffer_bytes:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer_bytes)
    sock.bind((host, port))
    config = uvicorn.Config(app, ws="websockets-sansio", ws_max_size=max_message_bytes, log_level="warning", lifespan="on",
                            ssl_certfile=ssl[0] if ssl else None, ssl_keyfile=ssl[1] if ssl else None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="funasr-server")
    thread.start()
    try:
        for _ in range(1000):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.01)
        if not server.started:
            raise RuntimeError("the server did not start")
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
