"""Model name -> hub id -> local directory (Hugging Face, ModelScope, local folders, the bundled models)."""
from __future__ import annotations

import importlib
import logging
import os
import urllib.request
from pathlib import Path
from typing import Any, Optional

from funasr.errors import FunASRError, ModelNotFoundError

log = logging.getLogger(__name__)

ASSETS = Path(__file__).parent / "assets"
# models inside the package: FunASR's FSMN-VAD, and the small Mandarin ASR and punctuation models trained
# by egs/synthetic_zh (names of their own: a model the user names on a hub is never replaced by these)
BUNDLED = {name: ASSETS / name for name in ("fsmn-vad", "paraformer-zh-small", "ct-punc-zh-small")}

HF_NAMES = {
    "paraformer": "funasr/paraformer-zh",
    "paraformer-zh": "funasr/paraformer-zh",
    "paraformer-en": "funasr/paraformer-en",
    "paraformer-en-spk": "funasr/paraformer-en",
    "paraformer-zh-streaming": "funasr/paraformer-zh-streaming",
    "fsmn-vad": "funasr/fsmn-vad",
    "ct-punc": "funasr/ct-punc",
    "ct-punc-c": "iic/punc_ct-transformer_zh-cn-common-vocab272727-pytorch",
    "fa-zh": "funasr/fa-zh",
    "cam++": "funasr/campplus",
}

MS_NAMES = {
    "paraformer": "iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "paraformer-zh": "iic/speech_seaco_paraformer_large_asr_nat-zh-cn-16k-common-vocab8404-pytorch",
    "paraformer-en": "iic/speech_paraformer-large-vad-punc_asr_nat-en-16k-common-vocab10020",
    "paraformer-en-spk": "iic/speech_paraformer-large-vad-punc_asr_nat-en-16k-common-vocab10020",
    "paraformer-zh-streaming": "iic/speech_paraformer-large_asr_nat-zh-cn-16k-common-vocab8404-online",
    "fsmn-vad": "iic/speech_fsmn_vad_zh-cn-16k-common-pytorch",
    "ct-punc": "iic/punc_ct-transformer_cn-en-common-vocab471067-large",
    "ct-punc-c": "iic/punc_ct-transformer_zh-cn-common-vocab272727-pytorch",
    "fa-zh": "iic/speech_timestamp_prediction-v1-16k-offline",
    "cam++": "iic/speech_campplus_sv_zh-cn_16k-common",
}

HUBS = {"hf": "hf", "huggingface": "hf", "ms": "ms", "modelscope": "ms"}

URL_TIMEOUT_S = 60  # seconds without data before a download of an input (audio, hotword list) gives up


def is_url(value: Any) -> bool:
    """True for an http(s) URL string."""
    return isinstance(value, str) and value.startswith(("http://", "https://"))


def fetch_url(url: str, what: str, error: type[FunASRError]) -> bytes:
    """The body of ``url``; any failure raises ``error`` naming ``what`` was being downloaded and the URL."""
    try:
        with urllib.request.urlopen(url, timeout=URL_TIMEOUT_S) as response:
            return response.read()
    except Exception as e:  # urllib raises many kinds (URLError, HTTPError, timeouts, ValueError)
        raise error(f"cannot download {url} ({what}): {e}; check the address, or download it and pass the local file") from e


def hf_offline() -> bool:
    """True when Hugging Face offline mode is set (``HF_HUB_OFFLINE=1``)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def resolve_model(model: str, hub: str = "hf", revision: Optional[str] = None) -> Path:
    """A local directory for ``model``: a folder, a short name (``paraformer-zh``) or a hub id."""
    text = str(model)
    path = Path(text).expanduser()
    if path.is_dir():
        return path.resolve()
    if hub not in HUBS:
        raise ModelNotFoundError(f"unknown hub {hub!r}; use hub='hf' (Hugging Face) or hub='ms' (ModelScope)")
    hub = HUBS[hub]
    if text in BUNDLED and revision is None:
        return BUNDLED[text]
    names = HF_NAMES if hub == "hf" else MS_NAMES
    repo_id = names.get(text, text)
    if repo_id.count("/") != 1 or text.startswith((".", "/", "~")) or path.exists():
        known = ", ".join(sorted(names))
        raise ModelNotFoundError(
            f"model {text!r} is neither a model directory, a known name ({known}) nor a hub id like "
            "'funasr/paraformer-zh'; check the spelling or pass a local directory"
        )
    if hub == "hf":
        return _download_hf(text, repo_id, revision)
    return _download_ms(text, repo_id, revision)


def _download_hf(name: str, repo_id: str, revision: Optional[str]) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

    offline = hf_offline()
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=offline))
    except LocalEntryNotFoundError as e:
        where = "offline mode (HF_HUB_OFFLINE=1) is on" if offline else "the hub could not be reached"
        raise ModelNotFoundError(
            f"model {name!r} (Hugging Face {repo_id}) is not in the local cache and {where}; "
            f"download it once with `hf download {repo_id}` (or run online), "
            f"or pass a local model directory as model=...{_offline_hint(name)}"
        ) from e
    except RepositoryNotFoundError as e:
        raise ModelNotFoundError(
            f"model {name!r}: Hugging Face has no repository {repo_id}; check the name, or try hub='ms'"
        ) from e
    except (HfHubHTTPError, OSError) as e:
        raise ModelNotFoundError(f"model {name!r} (Hugging Face {repo_id}) could not be downloaded: {e}") from e


def _offline_hint(name: str) -> str:
    """For a Mandarin ASR or punctuation name: the bundled small model that works offline."""
    if name.startswith("paraformer-zh"):
        return "; offline, model='paraformer-zh-small' (bundled, trained on synthetic speech) transcribes Mandarin"
    if name.startswith("ct-punc"):
        return "; offline, 'ct-punc-zh-small' (bundled) punctuates Mandarin"
    return ""


def _download_ms(name: str, repo_id: str, revision: Optional[str]) -> Path:
    try:
        modelscope = importlib.import_module("modelscope")
    except ModuleNotFoundError:
        raise ModelNotFoundError(
            f"model {name!r} is on ModelScope ({repo_id}), but the modelscope package is not installed; "
            "run `pip install modelscope`, or use hub='hf', or pass a local model directory"
        ) from None
    try:
        return Path(modelscope.snapshot_download(repo_id, revision=revision or "master"))
    except Exception as e:  # modelscope raises its own and requests' errors
        raise ModelNotFoundError(f"model {name!r} (ModelScope {repo_id}) could not be downloaded: {e}") from e
