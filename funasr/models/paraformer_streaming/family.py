"""The streaming Paraformer family: ParaformerStreaming (``paraformer-zh-streaming``), decoded chunk by chunk."""
from funasr.registry import Family

FAMILY = Family(
    task="funasr.tasks.asr:StreamingASRTask",
    models=("ParaformerStreaming",),
    modules=(
        "funasr.models.paraformer_streaming.model",
        "funasr.models.paraformer.model",
        "funasr.models.paraformer.decoder",
    ),
    torch_engine="funasr.models.paraformer_streaming.engine:ParaformerStreamingEngine",
    quantize_exclude=("output",),
)
