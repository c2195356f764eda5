"""SeACo-Paraformer: Paraformer with hotwords through a bias encoder and a second decoder."""
from funasr.registry import Family

FAMILY = Family(
    task="funasr.tasks.asr:ASRTask",
    models=("SeacoParaformer",),
    modules=("funasr.models.seaco_paraformer.model", "funasr.models.paraformer.decoder"),
    torch_engine="funasr.models.paraformer.engine:ParaformerEngine",
    onnx_engine="funasr.models.paraformer.onnx:ParaformerOnnx",
    graphs="funasr.models.seaco_paraformer.export:graphs",
    quantize_exclude=("output",),  # the output layers (decoder, hotword, CIF weights) stay float
)
