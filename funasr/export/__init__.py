"""Export a loaded model to ONNX (fp32, int8), TorchScript or TensorRT in a self-contained folder.

Each model family turns its network into :class:`ExportGraph` objects (``model``, and
``model_eb`` for the hotword models; ``graphs`` of its family declaration); the writers here save them under the reference's file
names next to copies of the config, CMVN and token files, so the folder can be loaded by the
``funasr_onnx`` runtime, LibTorch or TensorRT without the original model directory.
"""
from __future__ import annotations

import copy
import logging
import shutil
from pathlib import Path
from typing import Any, Optional

import torch

from funasr import registry
from funasr.errors import ExportError
from funasr.export.graph import ExportGraph

log = logging.getLogger(__name__)

TYPES = ("onnx", "torchscript", "tensorrt")

# FunASR's export() accepts these and does nothing with them; so do we, so its calls run unchanged.
UNUSED_REFERENCE_OPTIONS = ("calib_num", "fallback_num")

# Files a runtime reads besides the graphs (weights are not copied).
SKIPPED_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".onnx", ".torchscript", ".plan")


def model_graphs(task: Any, dtype: torch.dtype = torch.float32) -> list[ExportGraph]:
    """The export graphs of the task's PyTorch module in ``dtype`` (a copy: the task's own module is left untouched).

    In float16 the parts the model keeps in float32 (``keep_float32``: the CIF) stay so, as in
    its PyTorch fp16 path; inputs and outputs are float32 either way.
    """
    family = registry.family_of(task.cfg["model"])
    if family.graphs is None:
        exportable = sorted(m for f in registry.families() if f.graphs for m in f.models)
        raise ExportError(f"exporting {task.cfg['model']} is not supported; exportable models: {', '.join(exportable)}")
    module = copy.deepcopy(task.net.module).to(dtype).eval()
    if dtype != torch.float32 and hasattr(module, "keep_float32"):
        module.keep_float32()
    return registry.resolve(family.graphs)(module, task.frontend)


def copy_assets(cfg: dict[str, Any], output_dir: Path) -> None:
    """Copy config.yaml, am.mvn, tokens, seg_dict, jieba_usr_dict and the like beside the graphs."""
    model_dir = Path(cfg["model_dir"])
    files = [p for p in model_dir.iterdir() if p.is_file() and p.suffix not in SKIPPED_SUFFIXES]
    # Files the config points to outside the model directory keep their conventional names.
    named = {
        "am.mvn": (cfg.get("frontend_conf") or {}).get("cmvn_file"),
        "seg_dict": (cfg.get("tokenizer_conf") or {}).get("seg_dict"),
        "jieba_usr_dict": cfg.get("jieba_usr_dict"),
    }
    token_list = (cfg.get("tokenizer_conf") or {}).get("token_list")
    if isinstance(token_list, str):
        named["tokens.json" if token_list.endswith(".json") else "tokens.txt"] = token_list
    for src in files:
        if src.resolve() != (output_dir / src.name).resolve():
            shutil.copy2(src, output_dir / src.name)
    for name, src in named.items():
        if src and Path(src).is_file() and Path(src).parent.resolve() != model_dir.resolve():
            shutil.copy2(src, output_dir / name)


def export_model(
    task: Any,
    type: str = "onnx",
    quantize: bool = False,
    output_dir: Optional[str] = None,
    weight_type: str = "uint8",
    opset_version: int = 14,
    fp16: bool = True,
    device: Optional[str] = None,
    **options: Any,
) -> str:
    """Export ``task``'s model; returns the folder written (default: the model directory, as FunASR does).

    ``type``: ``onnx`` (``model.onnx``, plus ``model_quant.onnx`` when ``quantize``),
    ``torchscript`` (``model.torchscript``) or ``tensorrt`` (``model.onnx`` and a
    ``model.plan`` engine; fp16 unless ``fp16=False``, built from ``model_fp16.onnx``). Hotword models add ``model_eb.*``.
    ``weight_type``: how int8 files store MatMul weights, ``uint8`` (the reference's) or
    ``int8`` (see quantize.py; funasr_onnx runs uint8 files on the int8 kernels by itself).
    ``calib_num`` / ``fallback_num`` are accepted, unused, as in FunASR.
    """
    from funasr.export.onnx import export_onnx
    from funasr.export.quantize import WEIGHT_TYPES, quantize_onnx
    from funasr.export.tensorrt import build_engine, import_tensorrt
    from funasr.export.torchscript import export_torchscript

    unknown = sorted(set(options) - set(UNUSED_REFERENCE_OPTIONS))
    if unknown:
        raise ExportError(f"unknown export option(s) {', '.join(unknown)}; see funasr.export.export_model for the options")
    if type not in TYPES:
        raise ExportError(f"unknown export type {type!r}; use one of {', '.join(TYPES)}")
    if quantize and weight_type not in WEIGHT_TYPES:
        raise ExportError(f"unknown weight_type {weight_type!r}; use one of {', '.join(WEIGHT_TYPES)}")
    if type == "tensorrt":
        import_tensorrt()
    out = Path(output_dir or task.cfg["model_dir"])
    out.mkdir(parents=True, exist_ok=True)
    family = registry.family_of(task.cfg["model"])
    graphs = model_graphs(task)
    half = {g.name: g for g in model_graphs(task, torch.float16)} if type == "tensorrt" and fp16 else {}
    with torch.no_grad():
        for graph in graphs:
            if type == "torchscript":
                if quantize:
                    log.warning("quantize=True has no effect on TorchScript export")
                dev = torch.device(device) if device else task.net.device
                export_torchscript(graph, out / f"{graph.name}.torchscript", dev)
                continue
            onnx_path = export_onnx(graph, out / f"{graph.name}.onnx", opset_version)
            if quantize:
                quantize_onnx(onnx_path, out / f"{graph.name}_quant.onnx", weight_type, family.quantize_exclude)
            if type == "tensorrt":
                if half:  # strongly typed: the engine computes in the graph's types
                    onnx_path = export_onnx(half[graph.name], out / f"{graph.name}_fp16.onnx", opset_version)
                build_engine(onnx_path, out / f"{graph.name}.plan", graph)
    copy_assets(task.cfg, out)
    log.info("exported %s as %s to %s", task.cfg.get("model"), type, out)
    return str(out)
