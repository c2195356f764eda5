"""FSMN-VAD: the network (model.py, needs torch) and the segmenter state machine (segmenter.py, numpy only)."""
