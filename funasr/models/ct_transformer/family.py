"""CT-Transformer punctuation."""
from funasr.registry import Family

# Tensor names of the exported graph (export.py writes them, onnx.py feeds them; the reference runtimes read them).
INPUTS, TEXT_LENGTHS, LOGITS = "inputs", "text_lengths", "logits"

FAMILY = Family(
    task="funasr.tasks.punc:PuncTask",
    models=("CTTransformer",),
    modules=("funasr.models.ct_transformer.model", "funasr.models.sanm"),
    torch_engine="funasr.models.ct_transformer.engine:CTTransformerEngine",
    onnx_engine="funasr.models.ct_transformer.onnx:CTTransformerOnnx",
    graphs="funasr.models.ct_transformer.export:graphs",
    criterion="funasr.models.ct_transformer.loss:CTTransformerCriterion",
    dataset="funasr.data.punc:punc_dataset",
)
