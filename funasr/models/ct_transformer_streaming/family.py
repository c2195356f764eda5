"""Realtime CT-Transformer punctuation (FunASR's ``CTTransformerStreaming``, e.g. ``iic/punc_ct-transformer_zh-cn-common-vad_realtime-vocab272727``)."""
from funasr.models.ct_transformer.family import INPUTS, LOGITS, TEXT_LENGTHS
from funasr.registry import Family

# Tensor names of the exported graph besides the offline model's (the reference runtimes read them).
VAD_MASKS, SUB_MASKS = "vad_masks", "sub_masks"
GRAPH_INPUTS = (INPUTS, TEXT_LENGTHS, VAD_MASKS, SUB_MASKS)
GRAPH_OUTPUTS = (LOGITS,)

FAMILY = Family(
    task="funasr.tasks.punc:RealtimePuncTask",
    models=("CTTransformerStreaming",),
    modules=("funasr.models.ct_transformer_streaming.model", "funasr.models.sanm"),
    torch_engine="funasr.models.ct_transformer_streaming.engine:CTTransformerStreamingEngine",
    onnx_engine="funasr.models.ct_transformer_streaming.onnx:CTTransformerStreamingOnnx",
    graphs="funasr.models.ct_transformer_streaming.export:graphs",
)
