"""Contextual Paraformer: CLAS-style hotword biasing inside the decoder's last attention layer."""
from funasr.models.contextual_paraformer.decoder import ContextualParaformerDecoder
from funasr.models.contextual_paraformer.model import ContextualParaformer

__all__ = ["ContextualParaformer", "ContextualParaformerDecoder"]
