"""AutoModel: find, build and load a model from its directory, then run it on inputs."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional, Union

import torch

from funasr import registry
from funasr.config import resolve_model_dir
from funasr.errors import CheckpointError, FunASRError
from funasr.hub import resolve_model
from funasr.models import build_network, load_checkpoint
from funasr.options import check_constructor_args, check_device, check_flags, check_threads
from funasr.runner import Runner
from funasr.tasks import frontend_and_tokenizer, make_task

log = logging.getLogger(__name__)


def build_task(
    model: Union[str, Path],
    hub: str = "hf",
    revision: Optional[str] = None,
    device: Optional[str] = None,
    dtype: Optional[str] = None,
    **overrides: Any,
) -> Any:
    """Resolve ``model`` to a directory, build model, frontend and tokenizer, load weights, wrap in its engine and task."""
    cfg = resolve_model_dir(resolve_model(str(model), hub=hub, revision=revision), overrides)
    family = registry.family_of(cfg["model"])
    frontend, tokenizer = frontend_and_tokenizer(cfg)
    net = build_network(cfg, frontend, tokenizer, device="meta")  # no random init: every parameter comes from the checkpoint
    if not cfg.get("init_param"):
        raise CheckpointError(f"model directory {cfg['model_dir']} has no model.pt; pass init_param= or a complete directory")
    load_checkpoint(net, cfg["init_param"])
    engine = registry.resolve(family.torch_engine)(net, cfg, device, dtype)
    return make_task(engine, frontend, tokenizer, cfg)


class AutoModel(Runner):
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
        if model is None or not str(model).strip():
            raise FunASRError("AutoModel needs model=...: a model name such as 'paraformer-zh', a hub id or a local directory")
        check_device(device)
        check_flags(fp16=fp16, bf16=bf16)
        ncpu = check_threads("ncpu", ncpu)
        defaults = check_constructor_args(kwargs, vad_kwargs, punc_kwargs, batch_size=batch_size, disable_pbar=disable_pbar)
        if ncpu:
            torch.set_num_threads(ncpu)
        dtype = "fp16" if fp16 else "bf16" if bf16 else None
        main = build_task(model, hub, model_revision, device, dtype, **kwargs)
        sub = {"hub": hub, "device": device}
        vad = build_task(vad_model, revision=vad_model_revision, **{**sub, **(vad_kwargs or {})}) if vad_model else None
        punc = build_task(punc_model, revision=punc_model_revision, **{**sub, **(punc_kwargs or {})}) if punc_model else None
        super().__init__(main, main.kind, vad, punc, defaults)

    @property
    def model(self) -> torch.nn.Module:
        """The main network (``torch.nn.Module``), as FunASR's ``AutoModel.model``."""
        return self.task.net.module

    def export(self, type: str = "onnx", quantize: bool = False, output_dir: Optional[str] = None, **kwargs: Any) -> str:
        """Export the main model (``onnx``, ``torchscript`` or ``tensorrt``); returns the output folder."""
        from funasr.export import export_model

        return export_model(self.task, type=type, quantize=quantize, output_dir=output_dir, **kwargs)
