"""CT-Transformer punctuation: the network (model.py, needs torch) and its text rules (text.py, numpy only)."""
