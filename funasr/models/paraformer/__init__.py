"""Paraformer family parts: SAN-M encoder, CIF predictors, SAN-M decoder, Paraformer, BiCifParaformer."""
from funasr.models.paraformer.cif_predictor import CifPredictorV2, CifPredictorV3
from funasr.models.paraformer.decoder import ParaformerSANMDecoder
from funasr.models.paraformer.model import BiCifParaformer, Paraformer, Recognition
from funasr.models.sanm import SANMEncoder

__all__ = [
    "BiCifParaformer",
    "CifPredictorV2",
    "CifPredictorV3",
    "Paraformer",
    "ParaformerSANMDecoder",
    "Recognition",
    "SANMEncoder",
]
