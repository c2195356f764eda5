"""FSMN-VAD: the network (model.py, needs torch) and the segmenter state machine (segmenter.py, numpy only)."""
import importlib.util

if importlib.util.find_spec("torch") is not None:
    from funasr.models.fsmn_vad.model import FSMN, FsmnVADStreaming

    __all__ = ["FSMN", "FsmnVADStreaming"]
