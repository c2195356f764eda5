"""Paraformer family: CIF arithmetic (cif.py, numpy), CIF predictors, SAN-M decoder, Paraformer and
BiCifParaformer (model.py), their engines (engine.py: PyTorch, onnx.py: onnxruntime), export graphs
(export.py) and the family declaration (family.py, numpy). Importing the package needs no torch."""
