"""The browser page in headless Chromium: a fake microphone fed from a wav file streams 2pass over the WebSocket."""
from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from conftest import AUDIO
from test_server import models, server  # noqa: F401  (the module's models fixture and server helper)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# As the machine notes give them: headless, no sandbox as root, and no background traffic to closed networks.
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
         "--autoplay-policy=no-user-gesture-required", "--remote-debugging-port=0", "--window-size=1000,800"]


class Page:
    """One Chromium tab driven over the DevTools protocol (JSON over a WebSocket)."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv(timeout=30))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(reply["error"])
                return reply["result"]

    def js(self, expression: str):
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True, userGesture=True, awaitPromise=True)
        if "exceptionDetails" in reply:  # e.g. the page is not there yet
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (.ci/run installs it)")
def test_browser_page_streams_microphone_2pass(models, tmp_path):  # noqa: F811
    """Start, speak (the wav file), stop: the page shows the final text the server sent; a screenshot is taken."""
    wav = tmp_path / "mic.wav"
    shutil.copy(AUDIO / "example.wav", wav)
    profile = tmp_path / "profile"
    with server(models) as address:
        proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
                                 f"--use-file-for-fake-audio-capture={wav}%noloop", f"http://{address}/"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = profile / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not port_file.is_file() and time.monotonic() < deadline:
                time.sleep(0.1)
            port = int(port_file.read_text().split()[0])
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            with connect(next(t for t in targets if t["type"] == "page")["webSocketDebuggerUrl"], max_size=None) as ws:
                final, error, shot, partials = drive(Page(ws))
        finally:
            proc.terminate()
            proc.wait(10)
    png = Path(tmp_path / "page.png")
    png.write_bytes(base64.b64decode(shot))
    assert not error and final.strip(), (final, error)
    assert partials > 0 or models.online is None  # live partials whenever a streaming model is loaded
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def drive(page: Page) -> tuple[str, str, str, int]:
    """Start, let the file play, stop, wait for the final message: (final text, error text, PNG screenshot base64,
    partial results shown)."""
    deadline = time.monotonic() + 30  # the tab may still show about:blank (also "complete") when we connect
    while not page.js("document.readyState === 'complete' && !!document.getElementById('start')") and time.monotonic() < deadline:
        time.sleep(0.1)
    page.js("document.getElementById('start').click()")
    deadline = time.monotonic() + 60  # the microphone and the socket open (slowly on a busy machine)
    while page.js("document.getElementById('status').textContent") != "listening" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert page.js("document.getElementById('status').textContent") == "listening", page.js(
        "JSON.stringify([document.getElementById('start').disabled, document.getElementById('error').textContent, location.href])")
    time.sleep(6.5)  # the file plays in real time (5.5 s)
    page.js("document.getElementById('stop').click()")
    deadline = time.monotonic() + 30
    while page.js("document.body.dataset.finished") != "1" and time.monotonic() < deadline:
        time.sleep(0.2)
    partials = int(page.js("document.body.dataset.partials || '0'"))
    final = page.js("document.getElementById('final').textContent")
    error = page.js("document.getElementById('error').textContent")
    shot = page.call("Page.captureScreenshot", format="png")["data"]
    return final, error, shot, partials
