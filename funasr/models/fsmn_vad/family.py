"""FSMN-VAD (streaming-capable voice activity detection)."""
from funasr.registry import Family

FAMILY = Family(
    task="funasr.tasks.vad:VADTask",
    models=("FsmnVADStreaming",),
    modules=("funasr.models.fsmn_vad.model",),
    torch_engine="funasr.models.fsmn_vad.engine:FsmnVADEngine",
    onnx_engine="funasr.models.fsmn_vad.onnx:FsmnVADOnnx",
    graphs="funasr.models.fsmn_vad.export:graphs",
)
