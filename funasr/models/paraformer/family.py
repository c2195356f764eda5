"""The Paraformer family: Paraformer (CifPredictorV2) and BiCifParaformer (CifPredictorV3, timestamps)."""
from funasr.registry import Family

FAMILY = Family(
    task="funasr.tasks.asr:ASRTask",
    models=("Paraformer", "BiCifParaformer"),
    modules=("funasr.models.paraformer.model", "funasr.models.paraformer.decoder"),
    torch_engine="funasr.models.paraformer.engine:ParaformerEngine",
    onnx_engine="funasr.models.paraformer.onnx:ParaformerOnnx",
    graphs="funasr.models.paraformer.export:graphs",
    quantize_exclude=("output",),  # the decoder's output layer and the CIF weight layers stay float
)
