"""int8 dynamic quantisation of an exported ONNX graph with the reference's settings."""
from __future__ import annotations

from pathlib import Path

from funasr.errors import ExportError

# Output projections and the hotword bias layers stay float: they set the final scores.
EXCLUDED_NAME_PARTS = ("output", "bias_encoder", "bias_decoder")


def quantize_onnx(src: Path, dst: Path) -> Path:
    """MatMul weights to per-channel uint8 (``quantize_dynamic``), skipping nodes named like EXCLUDED_NAME_PARTS."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise ExportError(f"int8 quantisation needs onnx and onnxruntime ({e}); pip install onnx onnxruntime") from e
    graph = onnx.load(str(src), load_external_data=False).graph
    excluded = [n.name for n in graph.node if n.op_type == "MatMul" and any(p in n.name for p in EXCLUDED_NAME_PARTS)]
    quantize_dynamic(
        model_input=str(src),
        model_output=str(dst),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QUInt8,
        nodes_to_exclude=excluded,
    )
    return dst
