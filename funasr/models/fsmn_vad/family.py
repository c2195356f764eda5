"""FSMN-VAD (streaming-capable voice activity detection)."""
from funasr.registry import Family

# Frames per network call, on every engine: a 10 s block keeps the activations in the CPU cache (~25% faster
# than one call per 60 s chunk); blocks carry the FSMN memory, so the size changes the scores by float rounding only.
NET_BLOCK_FRAMES = 1000

# Tensor names of the exported graph (export.py writes them, onnx.py feeds them; the reference runtimes read them):
# features and one FSMN cache per layer in, scores and the new caches out.
SPEECH, LOGITS = "speech", "logits"
IN_CACHE, OUT_CACHE = "in_cache{}", "out_cache{}"  # .format(layer)

FAMILY = Family(
    task="funasr.tasks.vad:VADTask",
    models=("FsmnVADStreaming",),
    modules=("funasr.models.fsmn_vad.model",),
    torch_engine="funasr.models.fsmn_vad.engine:FsmnVADEngine",
    onnx_engine="funasr.models.fsmn_vad.onnx:FsmnVADOnnx",
    graphs="funasr.models.fsmn_vad.export:graphs",
)
