"""FSMN-VAD (streaming-capable voice activity detection)."""
from funasr.registry import Family

# Frames per network call, on every engine: a 10 s block keeps the activations in the CPU cache (~25% faster
# than one call per 60 s chunk); blocks carry the FSMN memory, so the size changes the scores by float rounding only.
NET_BLOCK_FRAMES = 1000

FAMILY = Family(
    task="funasr.tasks.vad:VADTask",
    models=("FsmnVADStreaming",),
    modules=("funasr.models.fsmn_vad.model",),
    torch_engine="funasr.models.fsmn_vad.engine:FsmnVADEngine",
    onnx_engine="funasr.models.fsmn_vad.onnx:FsmnVADOnnx",
    graphs="funasr.models.fsmn_vad.export:graphs",
)
