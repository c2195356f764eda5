"""Streaming Paraformer family: chunk settings, windows and CIF firing across chunks (chunks.py, numpy),
ParaformerStreaming and SANMEncoderChunkOpt (model.py), engines (engine.py: PyTorch, onnx.py: onnxruntime),
export graphs (export.py) and the family declaration (family.py, numpy). Importing the package needs no torch."""
