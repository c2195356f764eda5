"""Reading a WeNet model folder (``train.yaml``, ``final.pt`` or another ``*.pt``, ``units.txt``,
``global_cmvn``) into a resolved config (torch-free)."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from funasr.errors import ConfigError

log = logging.getLogger(__name__)

CONFIG_FILE = "train.yaml"
UNITS_FILE = "units.txt"
JIT_FILE = "final.zip"  # WeNet's TorchScript export (runtime packages), read for its weights
WENET_MODEL = "asr_model"  # the ``model:`` of WeNet's U2 / U2++ configs (the default when absent)


def read_units(path: Path) -> list[str]:
    """``units.txt`` (``symbol id`` per line) -> the symbols ordered by id."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read the unit list {path}: {e}; re-download the model or fix the file") from e
    table: dict[int, str] = {}
    for n, line in enumerate(lines, 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit():
            raise ConfigError(f"{path} line {n} is {line!r}, not 'symbol id'; re-download the model or fix the file")
        table[int(parts[1])] = parts[0]
    if sorted(table) != list(range(len(table))):
        raise ConfigError(f"{path}: the ids are not 0..{len(table) - 1} without gaps; re-download the model or fix the file")
    return [table[i] for i in range(len(table))]


def find_checkpoint(model_dir: Path) -> Optional[Path]:
    """``final.pt``, else the folder's only ``*.pt``, else WeNet's scripted ``final.zip`` (runtime packages); None: none."""
    if (model_dir / "final.pt").is_file():
        return model_dir / "final.pt"
    found = sorted(p for p in model_dir.glob("*.pt") if p.is_file())
    if len(found) == 1:
        return found[0]
    if not found:
        return model_dir / JIT_FILE if (model_dir / JIT_FILE).is_file() else None
    raise ConfigError(
        f"{model_dir} has no final.pt and several checkpoints ({', '.join(p.name for p in found)}); "
        "pass init_param=<the one to use>"
    )


def special_ids(cfg: dict[str, Any], vocab_size: int) -> tuple[int, int, int]:
    """``(sos, eos, blank)``: from ``tokenizer_conf.special_tokens`` when present, else ``<sos>`` = ``<eos>`` = V-1."""
    special = (cfg.get("tokenizer_conf") or {}).get("special_tokens") or {}
    blank = int((cfg.get("ctc_conf") or {}).get("ctc_blank_id", special.get("<blank>", 0)))
    return int(special.get("<sos>", vocab_size - 1)), int(special.get("<eos>", vocab_size - 1)), blank


def read_model_dir(model_dir: Path) -> dict[str, Any]:
    """A WeNet folder as a resolved config: WeNet's keys plus ``frontend``, ``tokenizer``, ``init_param``."""
    from funasr.config import read_yaml  # funasr.config finds this reader through the registry

    path = model_dir / CONFIG_FILE
    cfg = read_yaml(path)
    if cfg.get("model", WENET_MODEL) != WENET_MODEL:
        raise ConfigError(f"{path} names the WeNet model {cfg['model']!r}; funasr runs WeNet's {WENET_MODEL!r} (U2 / U2++) only")
    cfg["model"] = "U2Model"
    units_path = model_dir / Path(str((cfg.get("tokenizer_conf") or {}).get("symbol_table_path") or UNITS_FILE)).name
    if not units_path.is_file():
        units_path = model_dir / UNITS_FILE
    if not units_path.is_file():
        raise ConfigError(f"{model_dir} has train.yaml but no {UNITS_FILE}; add the model's unit list")
    units = read_units(units_path)
    vocab = int(cfg.get("output_dim") or len(units))
    if vocab != len(units):
        raise ConfigError(f"{path} says output_dim {vocab} but {units_path} lists {len(units)} units; they must agree")
    fbank = (cfg.get("dataset_conf") or {}).get("fbank_conf") or {}
    n_mels = int(fbank.get("num_mel_bins", 80))
    if int(cfg.get("input_dim") or n_mels) != n_mels:
        raise ConfigError(f"{path}: input_dim {cfg['input_dim']} differs from fbank_conf.num_mel_bins {n_mels}")
    cfg["u2_special_ids"] = list(special_ids(cfg, vocab))
    cfg["frontend"] = "WavFrontendOnline"  # WeNet's Kaldi fbank: povey window, int16 scale, never dithered here
    cfg["frontend_conf"] = {
        "window": "povey", "n_mels": n_mels,
        "frame_length": fbank.get("frame_length", 25), "frame_shift": fbank.get("frame_shift", 10),
    }
    cfg["tokenizer"] = "CharTokenizer"
    cfg["tokenizer_conf"] = {**(cfg.get("tokenizer_conf") or {}), "token_list": units, "symbol_table_path": str(units_path)}
    checkpoint = find_checkpoint(model_dir)
    if checkpoint is not None:
        cfg["init_param"] = str(checkpoint)
    if cfg.get("cmvn") and not (model_dir / "global_cmvn").is_file():
        log.info("%s has no global_cmvn file: the CMVN statistics come from the checkpoint", model_dir)
    return cfg


# WeNet train.yaml keys that only describe WeNet's own engine or bookkeeping: nothing to carry over.
WENET_ENGINE_KEYS = ("dataset", "dtype", "save_states", "train_engine", "use_amp", "vocab_size", "ddp_conf",
                     "log_interval", "accum_grad", "grad_clip", "max_epoch")
WENET_TRAIN_KEYS = {"accum_grad": "accum_grad", "grad_clip": "grad_clip", "max_epoch": "max_epoch", "log_interval": "log_interval"}
SPEED_PERTURB = [0.9, 1.0, 1.1]  # WeNet's speed_perturb: true


def training_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """A WeNet train.yaml (as read by :func:`read_model_dir`, overrides merged) in funasr-train's keys.

    WeNet's top-level trainer keys go to ``train_conf`` and its ``dataset_conf`` (``batch_conf``,
    ``filter_conf``, ``sort_conf``, ``speed_perturb``, ``spec_aug``) to funasr-train's dataset keys and
    ``specaug``; keys already given in funasr-train's spelling win. A WeNet data option funasr-train
    does not have raises ConfigError.
    """
    from funasr.errors import ConfigError as Error

    out = {k: v for k, v in cfg.items() if k not in WENET_ENGINE_KEYS}
    train_conf = dict(cfg.get("train_conf") or {})
    for wenet, ours in WENET_TRAIN_KEYS.items():
        if wenet in cfg:
            train_conf.setdefault(ours, cfg[wenet])
    out["train_conf"] = train_conf
    wenet_data = dict(cfg.get("dataset_conf") or {})
    data: dict[str, Any] = {}
    batch = wenet_data.pop("batch_conf", None) or {}
    if batch:
        kind = batch.get("batch_type", "static")
        if kind not in ("static", "dynamic"):
            raise Error(f"dataset_conf.batch_conf.batch_type={kind!r}: funasr-train takes static or dynamic (WeNet's names)")
        data["batch_type"] = "example" if kind == "static" else "length"
        data["batch_size"] = int(batch.get("batch_size", 16) if kind == "static" else batch.get("max_frames_in_batch", 12000))
    limits = wenet_data.pop("filter_conf", None) or {}
    for wenet, ours in (("max_length", "max_source_length"), ("min_length", "min_source_length"),
                        ("token_max_length", "max_target_length"), ("token_min_length", "min_target_length")):
        if wenet in limits:
            data[ours] = int(limits.pop(wenet))
    if limits:
        raise Error(f"dataset_conf.filter_conf keys {sorted(limits)} are not supported by funasr-train")
    if "shuffle" in wenet_data:
        data["shuffle"] = bool(wenet_data.pop("shuffle"))
    wenet_data.pop("shuffle_conf", None)  # the sampler shuffles the whole list (seeded by epoch)
    sort = wenet_data.pop("sort", True)
    sort_conf = wenet_data.pop("sort_conf", None) or {}
    data["sort_size"] = int(sort_conf.get("sort_size", 500)) if sort else 0
    if wenet_data.pop("speed_perturb", False):
        data["speed_perturb"] = SPEED_PERTURB
    resample = (wenet_data.pop("resample_conf", None) or {}).get("resample_rate", 16000)
    if resample != 16000:
        raise Error(f"dataset_conf.resample_conf.resample_rate={resample}: funasr-train trains on 16 kHz audio only")
    wenet_data.pop("fbank_conf", None)  # read by read_model_dir into frontend_conf (never dithered here)
    if wenet_data.pop("spec_aug", False):
        out.setdefault("specaug", "SpecAug")
        out.setdefault("specaug_conf", wenet_data.pop("spec_aug_conf", None) or {})
    wenet_data.pop("spec_aug_conf", None)
    out["dataset_conf"] = {**data, **wenet_data}  # what is left is checked as funasr-train dataset keys
    return out
