"""Training data: jsonl lists, the dataset, the length-bucketing sampler and the batch layout.

A batch is a dict: ``keys`` (list[str]); ``speech`` float32 (B, T, D), the frontend's features
(fbank -> LFR -> CMVN, the inference code path), zero-padded; ``speech_lengths`` int64 (B,);
``text`` int64 (B, L), token ids padded with ``IGNORE_ID``; ``text_lengths`` int64 (B,).
A batch whose utterances all failed to load has ``keys == []`` and B = 0: skip it.

Modules: ``funasr.data.jsonl`` (FunASR's jsonl lists, scp2jsonl/jsonl2scp, the byte-offset index;
torch-free), ``funasr.data.dataset`` (``AudioDataset``, ``collate``, bad-data handling),
``funasr.data.sampler`` (``BatchSampler``, ``DataLoader``: seeded, rank-aware, resumable).
"""

IGNORE_ID = -1  # padding of ``text``; losses ignore it

# dataset_conf keys this trainer reads (FunASR's meaning), the values it accepts for FunASR's named parts,
# and the key FunASR's configs carry that FunASR 1.4 itself reads nowhere (accepted with a warning).
DATASET_KEYS = (
    "batch_sampler", "batch_type", "batch_size", "sort_size", "max_token_length", "batch_size_sample_max", "shuffle",
    "num_workers", "pin_memory", "prefetch_factor", "persistent_workers", "min_source_length", "max_source_length",
    "min_target_length", "max_target_length", "speed_perturb", "preprocessor_speech", "preprocessor_speech_conf",
    "index_ds", "dataloader", "data_split_num", "length_scale_source",
)
SAMPLERS = ("BatchSampler", "CustomDistributedBatchSampler", "CustomDistributedDynamicBatchSampler",
            "DynamicBatchLocalShuffleSampler", "EspnetStyleBatchSampler", "RankFullLocalShuffleBatchSampler",
            "RankFullLocalShuffleDynamicBatchSampler")
DATASET_VALUES = {
    "index_ds": ("IndexDSJsonl",),
    "dataloader": ("DataloaderMapStyle",),
    "batch_sampler": SAMPLERS,
    "preprocessor_speech": ("SpeechPreprocessSpeedPerturb", None),
    "data_split_num": (1,),
    "length_scale_source": (1, 1.0),
}
NO_EFFECT_KEYS = ("buffer_size",)


def check_dataset_conf(dataset: object, conf: dict) -> list[str]:
    """Raise OptionError for a ``dataset`` / ``dataset_conf`` setting this trainer would not honour; return warnings."""
    from funasr.errors import OptionError

    if dataset not in (None, "AudioDataset"):
        raise OptionError(f"dataset={dataset!r} is not supported: funasr-train reads FunASR jsonl lists with AudioDataset")
    warnings = []
    for key, value in conf.items():
        if key in NO_EFFECT_KEYS:
            warnings.append(f"dataset_conf.{key}={value!r} has no effect (FunASR 1.4 does not read it either; sort_size sets the sort buffer)")
        elif key not in DATASET_KEYS:
            raise OptionError(f"dataset_conf.{key} is not a dataset option of funasr-train; it reads: {', '.join(DATASET_KEYS)}")
        elif key in DATASET_VALUES and value not in DATASET_VALUES[key]:
            allowed = ", ".join(repr(v) for v in DATASET_VALUES[key])
            raise OptionError(f"dataset_conf.{key}={value!r} is not supported: funasr-train takes {allowed}")
    speech_conf = conf.get("preprocessor_speech_conf") or {}
    if not isinstance(speech_conf, dict) or set(speech_conf) - {"speed_perturb"}:
        raise OptionError(f"dataset_conf.preprocessor_speech_conf={speech_conf!r}: only speed_perturb is supported")
    if speech_conf and not conf.get("preprocessor_speech"):
        raise OptionError("dataset_conf.preprocessor_speech_conf is set but preprocessor_speech is not: "
                          "set preprocessor_speech: SpeechPreprocessSpeedPerturb (or speed_perturb directly)")
    return warnings
