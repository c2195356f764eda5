"""funasr_onnx: run exported FunASR models with onnxruntime, with funasr's API and output, without PyTorch.

``AutoModel(model=dir, vad_model=dir, punc_model=dir, quantize=True).generate(input=...)``
returns what ``funasr.AutoModel`` returns. The model classes can also be used alone; the
reference runtime's class names are kept as aliases.
"""
from funasr.audio import TextItem
from funasr_onnx.asr import Paraformer
from funasr_onnx.auto_model import AutoModel
from funasr_onnx.punc import CTTransformer, CTTransformerRealtime
from funasr_onnx.session import SessionConfig
from funasr_onnx.vad import FsmnVAD

# Names of the reference funasr_onnx package.
SeacoParaformer = ContextualParaformer = BiCifParaformer = Paraformer
Fsmn_vad = FsmnVAD
CT_Transformer = CTTransformer
CT_Transformer_VadRealtime = CTTransformerRealtime

__version__ = "0.1.0"

__all__ = [
    "AutoModel",
    "BiCifParaformer",
    "CTTransformer",
    "CTTransformerRealtime",
    "CT_Transformer",
    "CT_Transformer_VadRealtime",
    "ContextualParaformer",
    "FsmnVAD",
    "Fsmn_vad",
    "Paraformer",
    "SeacoParaformer",
    "SessionConfig",
    "TextItem",
]
