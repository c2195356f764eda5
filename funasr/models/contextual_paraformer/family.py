"""Contextual Paraformer: hotwords through the decoder's last attention layer; always biased."""
from funasr.registry import Family

FAMILY = Family(
    task="funasr.tasks.asr:ASRTask",
    models=("ContextualParaformer",),
    modules=("funasr.models.contextual_paraformer.model",),
    torch_engine="funasr.models.paraformer.engine:ParaformerEngine",
    onnx_engine="funasr.models.paraformer.onnx:ParaformerOnnx",
    graphs="funasr.models.contextual_paraformer.export:graphs",
    quantize_exclude=("output", "bias_decoder"),  # output layers and the hotword attention stay float
    always_bias=True,  # without hotwords the decoder attends to the sentinel [sos] alone
)
