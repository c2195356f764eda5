"""``funasr-server``: FunASR's WebSocket protocol (offline / online / 2pass), an OpenAI-compatible HTTP API and a browser page.

Needs the ``serve`` extra (FastAPI, uvicorn, websockets, python-multipart). ``create_app(Models.load(ModelChoice(...)),
ServerConfig(...))`` gives the ASGI application; ``funasr.bin.server`` runs it.
"""
from funasr.serve.models import ModelChoice, Models
from funasr.serve.session import Limits

__all__ = ["ModelChoice", "Models", "Limits"]
