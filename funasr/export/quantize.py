"""int8 dynamic quantisation of an exported ONNX graph with the reference's settings.

The reference stores MatMul weights as uint8 (``weight_type="uint8"``, the default here), which
onnxruntime runs with generic u8 x u8 kernels. ``funasr_onnx`` rewrites them when it loads such a
file for the CPU at hand (runtime/python/funasr_onnx/int8.py): shifted to int8 on CPUs with VNNI /
AMX (exact), re-quantised to 7-bit int8 on other x86 CPUs, whose u8 x s8 kernels would saturate
with full-range int8 weights. ``weight_type="int8"`` writes int8 weights for other runtimes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from funasr.errors import ExportError

WEIGHT_TYPES = ("uint8", "int8")
LARGE_TABLE = 1 << 22  # elements (16 MB in float32): embedding tables this large are stored in 8 bits too


def quantize_onnx(src: Path, dst: Path, weight_type: str = "uint8", exclude: Sequence[str] = (),
                  large_table: int = LARGE_TABLE) -> Path:
    """MatMul weights to per-channel ``weight_type`` (``quantize_dynamic``), skipping nodes whose name contains a part of ``exclude``.

    Each family declares its ``quantize_exclude`` (output projections and hotword layers, which set the final scores).
    Embedding tables (Gather over a weight) of ``large_table`` elements or more are stored in 8 bits as well
    (dequantised row by row after the lookup): ct-punc's 272727-word table is 280 MB in float32, 70 MB so.
    """
    if weight_type not in WEIGHT_TYPES:
        raise ExportError(f"unknown quantisation weight type {weight_type!r}; use one of {', '.join(WEIGHT_TYPES)}")
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise ExportError(f"int8 quantisation needs onnx and onnxruntime ({e}); pip install onnx onnxruntime") from e
    graph = onnx.load(str(src), load_external_data=False).graph
    sizes = {t.name: int(np.prod(t.dims)) for t in graph.initializer}
    excluded = [n.name for n in graph.node if n.op_type == "MatMul" and any(p in n.name for p in exclude)]
    excluded += [n.name for n in graph.node if n.op_type == "Gather" and sizes.get(n.input[0], 0) < large_table]
    quantize_dynamic(
        model_input=str(src),
        model_output=str(dst),
        op_types_to_quantize=["MatMul", "Gather"],
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QUInt8 if weight_type == "uint8" else QuantType.QInt8,
        nodes_to_exclude=excluded,
    )
    return dst
