"""Export a loaded model to ONNX (fp32, int8), TorchScript or TensorRT in a self-contained folder.

Each model family turns its network into :class:`ExportGraph` objects (``model``, and
``model_eb`` for the hotword models; ``graphs`` of its family declaration); the writers here save them under the reference's file
names next to copies of the config, CMVN and token files, so the folder can be loaded by the
``funasr_onnx`` runtime, LibTorch or TensorRT without the original model directory.
"""
from __future__ import annotations

import copy
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Optional

import torch

from funasr import registry
from funasr.errors import ExportError
from funasr.export.graph import ExportGraph

log = logging.getLogger(__name__)

TYPES = ("onnx", "torchscript", "tensorrt", "sherpa-onnx")

# FunASR's export() accepts these and does nothing with them; so do we, so its calls run unchanged.
UNUSED_REFERENCE_OPTIONS = ("calib_num", "fallback_num")

PACKAGE_DIR = Path(__file__).resolve().parent.parent  # never written to: it may be shared or read-only

# Files a runtime reads besides the graphs (weights are not copied).
SKIPPED_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".onnx", ".torchscript", ".plan", ".zip")


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


def default_output_dir(model_dir: Path) -> Path:
    """The model folder, where FunASR writes; ``./exported/<folder name>`` when it is inside the package or read-only."""
    model_dir = model_dir.resolve()
    if PACKAGE_DIR not in model_dir.parents and os.access(model_dir, os.W_OK):
        return model_dir
    out = Path.cwd() / "exported" / model_dir.name
    log.warning("%s is inside the funasr package or read-only: exporting to %s instead", model_dir, out)
    return out


def check_export_args(
    type: str, quantize: bool, weight_type: str, opset_version: Any, output_dir: Optional[Path], fp16: Any = True,
    **options: Any,
) -> None:
    """Raise ExportError for a value export_model cannot use, before any model is loaded or file written."""
    from funasr.export.onnx import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET
    from funasr.export.quantize import WEIGHT_TYPES
    from funasr.export.tensorrt import import_tensorrt

    unknown = sorted(set(options) - set(UNUSED_REFERENCE_OPTIONS))
    if unknown:
        raise ExportError(f"unknown export option(s) {', '.join(unknown)}; see funasr.export.export_model for the options")
    if type not in TYPES:
        raise ExportError(f"unknown export type {type!r}; use one of {', '.join(TYPES)}")
    for name, flag in (("quantize", quantize), ("fp16", fp16)):
        if not isinstance(flag, bool):
            raise ExportError(f"{name}={flag!r} is not allowed: pass True or False")
    if quantize and weight_type not in WEIGHT_TYPES:
        raise ExportError(f"unknown weight_type {weight_type!r}; use one of {', '.join(WEIGHT_TYPES)}")
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) or not MIN_OPSET <= opset_version <= MAX_OPSET:
        raise ExportError(
            f"opset_version={opset_version!r} is not allowed: the graphs export with ONNX opsets {MIN_OPSET}..{MAX_OPSET} "
            f"(default {DEFAULT_OPSET})"
        )
    if output_dir is not None:
        existing = Path(output_dir).absolute()
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir() or not os.access(existing, os.W_OK):
            raise ExportError(
                f"output_dir={str(output_dir)!r} cannot be created: {existing} is not a writable folder; pass a writable folder"
            )
    if type == "tensorrt":
        import_tensorrt()


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
    """Export ``task``'s model; returns the folder written (default: :func:`default_output_dir`).

    ``type``: ``onnx`` (``model.onnx``, plus ``model_quant.onnx`` when ``quantize``),
    ``torchscript`` (``model.torchscript``) or ``tensorrt`` (``model.onnx`` and a
    ``model.plan`` engine; fp16 unless ``fp16=False``, built from ``model_fp16.onnx``). Hotword models add ``model_eb.*``.
    ``sherpa-onnx``: the files sherpa-onnx loads (see sherpa.py), by default in ``sherpa-onnx/`` under
    the default folder, as their ``model.onnx`` is not funasr_onnx's; ``model.int8.onnx`` when ``quantize``.
    ``weight_type``: how int8 files store MatMul weights, ``uint8`` (the reference's) or
    ``int8`` (see quantize.py; funasr_onnx runs uint8 files on the int8 kernels by itself).
    ``calib_num`` / ``fallback_num`` are accepted, unused, as in FunASR.
    """
    out = Path(output_dir) if output_dir else default_output_dir(Path(task.cfg["model_dir"]))
    if type == "sherpa-onnx" and not output_dir:
        out = out / "sherpa-onnx"
    check_export_args(type, quantize, weight_type, opset_version, out, fp16, **options)
    if type == "sherpa-onnx":
        from funasr.export.sherpa import check_sherpa_model

        check_sherpa_model(task.cfg["model"])
    created = next((p for p in reversed([out, *out.parents]) if not p.exists()), None)
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write(task, type, quantize, out, weight_type, opset_version, fp16, device)
    except BaseException as e:
        if created is not None:  # leave no partial folder behind
            shutil.rmtree(created, ignore_errors=True)
        if isinstance(e, OSError):
            raise ExportError(f"cannot write the export to {out}: {e}; pass a writable output_dir") from e
        raise
    log.info("exported %s as %s to %s", task.cfg.get("model"), type, out)
    return str(out)


def _write(
    task: Any, type: str, quantize: bool, out: Path, weight_type: str, opset_version: int, fp16: bool, device: Optional[str]
) -> None:
    """Write the graphs of ``task`` in ``type`` and the files they need into the existing folder ``out``."""
    from funasr.export.onnx import export_onnx
    from funasr.export.quantize import quantize_onnx
    from funasr.export.tensorrt import build_engine
    from funasr.export.torchscript import export_torchscript

    family = registry.family_of(task.cfg["model"])
    graphs = model_graphs(task)
    if type == "sherpa-onnx":
        from funasr.export.sherpa import export_sherpa

        export_sherpa(task, out, quantize, weight_type, opset_version, graphs)
        return
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
    if type == "torchscript" and family.runtime_package:
        module = copy.deepcopy(task.net.module).float().eval()
        registry.resolve(family.runtime_package)(module, task.frontend, out)
    copy_assets(task.cfg, out)
