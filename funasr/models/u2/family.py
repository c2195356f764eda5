"""The U2 family: WeNet's U2 / U2++ models (conformer or transformer encoder, CTC, attention decoder)."""
from funasr.registry import Family

FAMILY = Family(
    task="funasr.models.u2.task:U2Task",
    models=("asr_model",),
    modules=("funasr.models.u2.model",),
    torch_engine="funasr.models.u2.engine:U2Engine",
    config_file="train.yaml",
    read_config="funasr.models.u2.config:read_model_dir",
)
