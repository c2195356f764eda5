"""TorchScript export: a traced module LibTorch loads with ``torch::jit::load``."""
from __future__ import annotations

import warnings
from pathlib import Path

import torch

from funasr.export.graph import ExportGraph


def export_torchscript(graph: ExportGraph, path: Path, device: torch.device) -> Path:
    """Trace ``graph`` on ``device`` and save it; same inputs and outputs (in order) as its ONNX graph."""
    inputs = tuple(x.to(device) for x in graph.inputs)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # TorchScript is deprecated, yet LibTorch's format
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # constants, as intended
        # In our code, a tensor turned into a Python value (a data-dependent branch or size) would freeze the trace.
        warnings.filterwarnings(
            "error", message="Converting a tensor to a Python", category=torch.jit.TracerWarning, module=r"funasr\."
        )
        traced = torch.jit.trace(graph.module.to(device), inputs, check_trace=False)
    traced.save(str(path))
    return path
