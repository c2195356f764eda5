"""CT-Transformer punctuation."""
from funasr.registry import Family

FAMILY = Family(
    task="funasr.tasks.punc:PuncTask",
    models=("CTTransformer",),
    modules=("funasr.models.ct_transformer.model", "funasr.models.sanm"),
    torch_engine="funasr.models.ct_transformer.engine:CTTransformerEngine",
    onnx_engine="funasr.models.ct_transformer.onnx:CTTransformerOnnx",
    graphs="funasr.models.ct_transformer.export:graphs",
)
