"""The streaming Paraformer family: ParaformerStreaming (``paraformer-zh-streaming``), decoded chunk by chunk."""
from funasr.registry import Family

# Tensor and graph names of the exported files, as FunASR's online runtimes read them (export.py writes them, onnx.py feeds them).
ENCODER_GRAPH, DECODER_GRAPH = "model", "decoder"
SPEECH, SPEECH_LENGTHS = "speech", "speech_lengths"  # encoder inputs: windows (B, T, 560) scaled and position-encoded
ENC, ENC_LEN, ALPHAS = "enc", "enc_len", "alphas"  # encoder outputs; ``enc`` / ``enc_len`` are decoder inputs too
EMBEDS, EMBEDS_LEN = "acoustic_embeds", "acoustic_embeds_len"  # decoder inputs: the fired CIF embeddings
LOGITS, SAMPLE_IDS = "logits", "sample_ids"  # decoder outputs
IN_CACHE, OUT_CACHE = "in_cache_{}", "out_cache_{}"  # per decoder layer: FSMN inputs before / after the chunk (B, D, kernel-1)

FAMILY = Family(
    task="funasr.tasks.asr:StreamingASRTask",
    models=("ParaformerStreaming",),
    modules=(
        "funasr.models.paraformer_streaming.model",
        "funasr.models.paraformer.model",
        "funasr.models.paraformer.decoder",
    ),
    torch_engine="funasr.models.paraformer_streaming.engine:ParaformerStreamingEngine",
    onnx_engine="funasr.models.paraformer_streaming.onnx:ParaformerStreamingOnnx",
    graphs="funasr.models.paraformer_streaming.export:graphs",
    quantize_exclude=("output",),
)
