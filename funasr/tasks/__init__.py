"""Tasks: turn loaded inputs into FunASR result dicts around a model (vad, asr, punc)."""
