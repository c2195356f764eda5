"""The streaming Paraformer family: ParaformerStreaming (``paraformer-zh-streaming``), decoded chunk by chunk."""
from funasr.registry import Family

# Tensor and graph names of the exported files, as FunASR's online runtimes read them (export.py writes them, onnx.py feeds them).
ENCODER_GRAPH, DECODER_GRAPH = "model", "decoder"
SPEECH, SPEECH_LENGTHS = "speech", "speech_lengths"  # encoder inputs: windows (B, T, 560) scaled and position-encoded
ENC, ENC_LEN, ALPHAS = "enc", "enc_len", "alphas"  # encoder outputs; ``enc`` / ``enc_len`` are decoder inputs too
EMBEDS, EMBEDS_LEN = "acoustic_embeds", "acoustic_embeds_len"  # decoder inputs: the fired CIF embeddings
LOGITS, SAMPLE_IDS = "logits", "sample_ids"  # decoder outputs
IN_CACHE, OUT_CACHE = "in_cache_{}", "out_cache_{}"  # per decoder layer: FSMN inputs before / after the chunk (B, D, kernel-1)
# The look-back graphs (ours; FunASR's runtimes do not read them): the same graphs with attention over earlier chunks.
ENCODER_LOOK_BACK_GRAPH, DECODER_LOOK_BACK_GRAPH = "model_look_back", "decoder_look_back"
PAST_KEYS, PAST_VALUES, PAST_LEN = "look_back_keys", "look_back_values", "look_back_len"  # (B, layers, L, D) x2, (B,) i32
KEYS, VALUES = "keys", "values"  # encoder outputs: each layer's keys/values of the window (B, layers, W, D)
PAST_ENC, PAST_ENC_LEN = "look_back_enc", "look_back_enc_len"  # decoder inputs: earlier encoder output (B, L, D), (B,) i32

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
