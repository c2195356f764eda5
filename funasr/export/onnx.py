"""ONNX export of an ExportGraph with the TorchScript-based exporter.

torch >= 2.9 defaults ``torch.onnx.export`` to the dynamo exporter, which needs onnxscript
and turns the CIF token count (a data-dependent size) into an export error; the
TorchScript-based exporter (``dynamo=False``) records it as a ``Range`` over a computed
count, so one graph serves every input length and batch size.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from funasr.export.graph import ExportGraph

DEFAULT_OPSET = 14
MIN_OPSET = 11  # the CIF's cumulative sums (CumSum)
MAX_OPSET = getattr(torch.onnx._constants, "ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET", 17)  # the exporter's newest


def export_onnx(graph: ExportGraph, path: Path, opset_version: int = DEFAULT_OPSET) -> Path:
    """Write ``graph`` to ``path`` (float32, constant folding on, the graph's names and dynamic axes)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the legacy exporter's deprecation notice
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")  # exporter notes on folding
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # constants, as intended
        # In our code, a tensor turned into a Python value (a data-dependent branch or size) would freeze the graph.
        warnings.filterwarnings(
            "error", message="Converting a tensor to a Python", category=torch.jit.TracerWarning, module=r"funasr\."
        )
        torch.onnx.export(
            graph.module,
            graph.inputs,
            str(path),
            input_names=graph.input_names,
            output_names=graph.output_names,
            dynamic_axes=graph.dynamic_axes,
            opset_version=opset_version,
            do_constant_folding=True,
            dynamo=False,
        )
    return path
