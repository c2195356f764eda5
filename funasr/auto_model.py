"""AutoModel: find, build and load a model from its directory, then run it on inputs."""
from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import torch

from funasr import registry
from funasr.audio import AudioItem, collect_sources, load_item
from funasr.config import resolve_model_dir
from funasr.errors import CheckpointError, FunASRError
from funasr.hub import resolve_model
from funasr.models import load_checkpoint
from funasr.pipeline import Pipeline
from funasr.tasks.punc import TextItem
from funasr.writers import write_results

log = logging.getLogger(__name__)

TASKS = {"vad": "funasr.tasks.vad:VADTask", "asr": "funasr.tasks.asr:ASRTask", "punc": "funasr.tasks.punc:PuncTask"}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


def pick_device(device: Optional[str]) -> torch.device:
    """The requested device, or the CPU (with a warning) when it is not available."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        log.warning("device %r asked for, but CUDA is not available: running on the CPU", device)
        return torch.device("cpu")
    return dev


def build_task(
    model: Union[str, Path],
    hub: str = "hf",
    revision: Optional[str] = None,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    **overrides: Any,
) -> Any:
    """Resolve ``model`` to a directory, build model, frontend and tokenizer, load weights, wrap in its task."""
    cfg = resolve_model_dir(resolve_model(str(model), hub=hub, revision=revision), overrides)
    frontend = registry.build(cfg["frontend"], **(cfg.get("frontend_conf") or {})) if cfg.get("frontend") else None
    tokenizer = registry.build(cfg["tokenizer"], **(cfg.get("tokenizer_conf") or {})) if cfg.get("tokenizer") else None
    model_cls = registry.lookup(cfg["model"])
    with torch.device("meta"):  # no random init: every parameter comes from the checkpoint
        net = model_cls.from_config(
            cfg,
            input_size=frontend.output_size() if frontend is not None else None,
            vocab_size=len(tokenizer) if tokenizer is not None else None,
        )
    if not cfg.get("init_param"):
        raise CheckpointError(f"model directory {cfg['model_dir']} has no model.pt; pass init_param= or a complete directory")
    load_checkpoint(net, cfg["init_param"])
    dev = pick_device(device)
    net = net.to(dev).eval()
    if dtype in DTYPES:
        net = net.to(DTYPES[dtype])
    module, name = TASKS[model_cls.task].split(":")
    return getattr(importlib.import_module(module), name)(net, frontend, tokenizer, cfg)


class AutoModel:
    """FunASR's facade: ``AutoModel(model=..., vad_model=..., punc_model=...).generate(input=...)``."""

    def __init__(
        self,
        model: Optional[str] = None,
        vad_model: Optional[str] = None,
        punc_model: Optional[str] = None,
        hub: str = "hf",
        device: Optional[str] = None,
        ncpu: Optional[int] = None,
        batch_size: int = 1,
        model_revision: Optional[str] = None,
        vad_model_revision: Optional[str] = None,
        punc_model_revision: Optional[str] = None,
        vad_kwargs: Optional[dict] = None,
        punc_kwargs: Optional[dict] = None,
        fp16: bool = False,
        bf16: bool = False,
        disable_pbar: bool = False,
        **kwargs: Any,
    ) -> None:
        if model is None:
            raise FunASRError("AutoModel needs model=...: a model name such as 'paraformer-zh', a hub id or a local directory")
        for key in ("disable_update", "disable_log", "log_level", "seed", "ngpu"):
            kwargs.pop(key, None)  # reference switches with nothing to do here (no update check, deterministic)
        if ncpu:
            torch.set_num_threads(int(ncpu))
        dtype = "fp16" if fp16 else "bf16" if bf16 else None
        self.batch_size = max(1, int(batch_size))
        self.disable_pbar = disable_pbar
        self.kwargs = kwargs
        self.model = build_task(model, hub, model_revision, device, dtype, **kwargs)
        sub = {"hub": hub, "device": device}
        self.vad_model = (
            build_task(vad_model, revision=vad_model_revision, **{**sub, **(vad_kwargs or {})}) if vad_model else None
        )
        self.punc_model = (
            build_task(punc_model, revision=punc_model_revision, **{**sub, **(punc_kwargs or {})}) if punc_model else None
        )

    @property
    def task(self) -> str:
        """What the main model does: ``"vad"``, ``"asr"`` or ``"punc"``."""
        return type(self.model.model).task

    def generate(self, input: Any, output_dir: Optional[str] = None, **kwargs: Any) -> list[dict]:
        """Run the model (and the VAD / punctuation chain when given) on ``input``; one dict per input."""
        results = self._generate(input, **kwargs)
        output_dir = output_dir or self.kwargs.get("output_dir")
        if output_dir:
            write_results(results, output_dir, kwargs.get("formats", ()))
        return results

    def _generate(self, input: Any, **kwargs: Any) -> list[dict]:
        if self.vad_model is not None and self.task == "asr":
            pipeline = Pipeline(self.vad_model, self.model, self.punc_model, TextItem,
                                self.kwargs.get("merge_length_s", 15), self.disable_pbar)
            return pipeline(input, **kwargs)
        if self.task == "punc":
            sources, single = collect_text_sources(input)
        else:
            sources, single = collect_sources(input)
        results = []
        for batch in self._batches(sources, kwargs.pop("batch_size", self.batch_size), kwargs.get("fs", 16000)):
            results.extend(self._run_batch(batch, single, **kwargs))
        return results

    def _batches(self, sources: list, batch_size: int, fs: int) -> Iterator[list]:
        """Load inputs lazily, ``batch_size`` at a time, so a long list never sits in memory at once."""
        from tqdm.auto import tqdm

        pbar = tqdm(total=len(sources), disable=self.disable_pbar or len(sources) < 2, desc="inputs", leave=False)
        for i in range(0, len(sources), max(1, int(batch_size))):
            chunk = sources[i : i + batch_size]
            yield [s if isinstance(s, TextItem) else load_item(s, fs) for s in chunk]
            pbar.update(len(chunk))
        pbar.close()

    def _run_batch(self, batch: list, single: bool, **kwargs: Any) -> list[dict]:
        """One batch through the task; bad items keep their place as ``{"key", "error"}``."""
        bad = [item for item in batch if getattr(item, "error", None) is not None]
        if bad and single:
            raise bad[0].error
        good = [item for item in batch if getattr(item, "error", None) is None]
        out = iter(self.model(good, **kwargs) if good else [])
        results = []
        for item in batch:
            if getattr(item, "error", None) is not None:
                log.warning("skipping %s: %s", item.key, item.error)
                results.append({"key": item.key, "error": str(item.error)})
            else:
                results.append(next(out))
        if self.punc_model is not None and self.task == "asr":
            results = self.punctuate(results, **kwargs)
        return results

    def punctuate(self, results: list[dict], **kwargs: Any) -> list[dict]:
        """Replace each result's text by its punctuated text (``raw_text`` kept on request)."""
        todo = [r for r in results if "error" not in r and r.get("text", "").strip()]
        punc = self.punc_model([TextItem(r["key"], r["text"]) for r in todo], **kwargs) if todo else []
        for r, p in zip(todo, punc):
            if kwargs.get("return_raw_text"):
                r["raw_text"] = r["text"]
            r["text"] = p["text"]
        return results

    def export(self, type: str = "onnx", quantize: bool = False, output_dir: Optional[str] = None, **kwargs: Any) -> str:
        """Export the main model (``onnx``, ``torchscript`` or ``tensorrt``); returns the output folder."""
        from funasr.export import export_model

        return export_model(self.model, type=type, quantize=quantize, output_dir=output_dir, **kwargs)


def collect_text_sources(data: Any) -> tuple[list[TextItem], bool]:
    """Text inputs for punctuation: a text, a list of texts, or a list file of ``key text`` lines."""
    from funasr.audio import content_key

    if isinstance(data, (list, tuple)):
        items: list[TextItem] = []
        for d in data:
            items.extend(collect_text_sources(d)[0])
        return items, False
    text = str(data)
    path = Path(text)
    if len(text) < 4096 and "\n" not in text and path.suffix in (".txt", ".scp", ".text") and path.is_file():
        items = []
        for line in path.read_text(encoding="utf-8").splitlines():
            parts = line.strip().split(maxsplit=1)
            if parts:
                items.append(TextItem(parts[0], parts[1] if len(parts) > 1 else ""))
        return items, False
    return [TextItem(content_key(text.encode("utf-8")), text)], True
