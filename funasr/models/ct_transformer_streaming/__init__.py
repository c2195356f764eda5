"""Realtime CT-Transformer punctuation (``CTTransformerStreaming``): the network (model.py, needs torch) and its call rules (text.py, numpy only)."""
