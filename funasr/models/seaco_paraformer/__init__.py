"""SeACo-Paraformer: hotword biasing through a bias encoder and a second SAN-M decoder."""
from funasr.models.seaco_paraformer.model import SeacoParaformer

__all__ = ["SeacoParaformer"]
