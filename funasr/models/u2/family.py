"""The U2 family: WeNet's U2 / U2++ models (conformer or transformer encoder, CTC, attention decoder)."""
from funasr.registry import Family

# Graph and tensor names of the exported files (export.py writes them, onnx.py feeds them), as WeNet's runtime reads them.
ENCODER, CTC, DECODER = "encoder", "ctc", "decoder"
CHUNK, OFFSET, ATT_CACHE, CNN_CACHE = "chunk", "offset", "att_cache", "cnn_cache"  # encoder inputs
OUTPUT, R_ATT_CACHE, R_CNN_CACHE = "output", "r_att_cache", "r_cnn_cache"  # encoder outputs
HIDDEN, PROBS = "hidden", "probs"  # ctc
HYPS, HYPS_LENS, ENCODER_OUT, SCORE, R_SCORE = "hyps", "hyps_lens", "encoder_out", "score", "r_score"  # decoder

FAMILY = Family(
    task="funasr.models.u2.task:U2Task",
    models=("U2Model",),  # WeNet folders: funasr.models.u2.config reads train.yaml
    modules=("funasr.models.u2.model",),
    torch_engine="funasr.models.u2.engine:U2Engine",
    onnx_engine="funasr.models.u2.onnx:U2Onnx",
    graphs="funasr.models.u2.export:graphs",
    config_file="train.yaml",
    read_config="funasr.models.u2.config:read_model_dir",
    runtime_package="funasr.models.u2.export:export_wenet_jit",  # final.zip for WeNet's LibTorch runtime
    criterion="funasr.models.u2.loss:U2Criterion",
    train_config="funasr.models.u2.config:training_config",
)
