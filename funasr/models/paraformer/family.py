"""The Paraformer family: Paraformer (CifPredictorV2) and BiCifParaformer (CifPredictorV3, timestamps)."""
from funasr.registry import Family

# Tensor and graph names of the exported files (export.py writes them, onnx.py feeds them; the reference runtimes read them).
SPEECH, SPEECH_LENGTHS, BIAS_EMBED = "speech", "speech_lengths", "bias_embed"  # ``model`` inputs
LOGITS, TOKEN_NUM, US_ALPHAS, US_CIF_PEAK = "logits", "token_num", "us_alphas", "us_cif_peak"  # ``model`` outputs
EMBED_GRAPH, HOTWORD, HW_EMBED = "model_eb", "hotword", "hw_embed"  # the hotword encoder graph, its input and output

FAMILY = Family(
    task="funasr.tasks.asr:ASRTask",
    models=("Paraformer", "BiCifParaformer"),
    modules=("funasr.models.paraformer.model", "funasr.models.paraformer.decoder"),
    torch_engine="funasr.models.paraformer.engine:ParaformerEngine",
    onnx_engine="funasr.models.paraformer.onnx:ParaformerOnnx",
    graphs="funasr.models.paraformer.export:graphs",
    quantize_exclude=("output",),  # the decoder's output layer and the CIF weight layers stay float
    criterion="funasr.models.paraformer.loss:ParaformerCriterion",
)
