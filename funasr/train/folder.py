"""The training output folder as a complete model folder: config.yaml, tokens.json, am.mvn, seg_dict, configuration.json.

``AutoModel(model=output_dir)`` and ``funasr-export --model output_dir`` load it as they load a released
model; ``model.pt`` (the latest checkpoint) is written by the trainer.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import yaml

from funasr.tokenizer import read_token_list

# Keys that only mean something on the machine and run that trained: the folder must not point back at them.
TRAINING_KEYS = ("train_data_set_list", "valid_data_set_list", "dataset", "dataset_conf", "train_conf", "optim",
                 "optim_conf", "scheduler", "scheduler_conf", "freeze_param", "seed")
RUN_KEYS = ("model_dir", "init_param", "config", "output_dir", "device", "hub", "model_revision", "resume")


def write_model_folder(cfg: dict[str, Any], output_dir: Path) -> dict[str, Any]:
    """Copy the token list, CMVN and seg_dict into ``output_dir`` and write the config naming them; returns that config."""
    output_dir.mkdir(parents=True, exist_ok=True)
    model_first = sorted(cfg, key=lambda k: k in TRAINING_KEYS)  # the model's keys first, then how it was trained
    out = {k: copy.deepcopy(cfg[k]) for k in model_first if k not in RUN_KEYS}
    metas: dict[str, Any] = {"init_param": "model.pt", "config": "config.yaml"}
    tokenizer_conf = out.setdefault("tokenizer_conf", {})
    token_list = tokenizer_conf.get("token_list")
    tokens = token_list if isinstance(token_list, list) else read_token_list(token_list)
    (output_dir / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False, indent=0), encoding="utf-8")
    tokenizer_conf["token_list"] = "tokens.json"
    tokenizer_conf.pop("symbol_table_path", None)  # a WeNet folder's units file: tokens.json replaces it
    metas["tokenizer_conf"] = {"token_list": "tokens.json"}
    if tokenizer_conf.get("seg_dict") and Path(tokenizer_conf["seg_dict"]).is_file():
        _copy(tokenizer_conf["seg_dict"], output_dir / "seg_dict")
        tokenizer_conf["seg_dict"] = "seg_dict"
        metas["tokenizer_conf"]["seg_dict"] = "seg_dict"
    frontend_conf = out.get("frontend_conf") or {}
    if frontend_conf.get("cmvn_file"):
        _copy(frontend_conf["cmvn_file"], output_dir / "am.mvn")
        frontend_conf["cmvn_file"] = "am.mvn"
        metas["frontend_conf"] = {"cmvn_file": "am.mvn"}
    (output_dir / "config.yaml").write_text(yaml.safe_dump(out, allow_unicode=True, sort_keys=False), encoding="utf-8")
    configuration = {"framework": "pytorch", "task": "auto-speech-recognition", "model": {"type": "funasr"},
                     "file_path_metas": metas}
    (output_dir / "configuration.json").write_text(json.dumps(configuration, indent=2), encoding="utf-8")
    return out


def _copy(src: str, dst: Path) -> None:
    if Path(src).resolve() != dst.resolve():
        shutil.copyfile(src, dst)
