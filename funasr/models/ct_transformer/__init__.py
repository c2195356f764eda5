"""CT-Transformer punctuation: the network (model.py, needs torch) and its text rules (text.py, numpy only)."""
import importlib.util

if importlib.util.find_spec("torch") is not None:
    from funasr.models.ct_transformer.model import CTTransformer

    __all__ = ["CTTransformer"]
