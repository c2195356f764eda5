"""Reading a model directory's config.yaml / configuration.json with the reference's precedence."""
from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from funasr import registry
from funasr.errors import ConfigError

log = logging.getLogger(__name__)

# File conventions of a FunASR model directory: file name -> where its path goes in the config.
_KNOWN_FILES = (
    ("model.pt", ("init_param",)),
    ("tokens.json", ("tokenizer_conf", "token_list")),
    ("tokens.txt", ("tokenizer_conf", "token_list")),
    ("seg_dict", ("tokenizer_conf", "seg_dict")),
    ("bpe.model", ("tokenizer_conf", "bpemodel")),
    ("am.mvn", ("frontend_conf", "cmvn_file")),
    ("jieba_usr_dict", ("jieba_usr_dict",)),
    ("lm.bin", ("ngram_lm", "lm_file")),  # an n-gram LM of the model's tokens, used by default (funasr.lm)
    ("lm.arpa.gz", ("ngram_lm", "lm_file")),
    ("lm.arpa", ("ngram_lm", "lm_file")),
)


def deep_merge(base: dict, top: dict) -> dict:
    """A copy of ``base`` with ``top`` merged over it (nested dicts merge, ``top`` wins)."""
    out = copy.deepcopy(base)
    for k, v in top.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_yaml(path: Path) -> dict:
    """A YAML file holding a mapping (ConfigError otherwise)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read {path}: {e}; re-download the model or fix the file") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a mapping of settings; re-download the model or fix the file")
    return data


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read {path}: {e}; re-download the model or fix the file") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object; re-download the model or fix the file")
    return data


def _absolute_metas(metas: dict, model_dir: Path) -> dict:
    """``file_path_metas`` with each file name that exists in ``model_dir`` made absolute."""
    out: dict = {}
    for k, v in metas.items():
        if isinstance(v, dict):
            out[k] = _absolute_metas(v, model_dir)
        elif isinstance(v, str) and (model_dir / v).is_file():
            out[k] = str(model_dir / v)
    return out


def _present_files(model_dir: Path) -> dict:
    """Config entries for the conventional files present in ``model_dir``."""
    out: dict = {}
    for name, where in _KNOWN_FILES:
        if (model_dir / name).is_file():
            node = out
            for key in where[:-1]:
                node = node.setdefault(key, {})
            node.setdefault(where[-1], str(model_dir / name))
    return out


def resolve_model_dir(model_dir: Union[str, Path], overrides: Optional[dict[str, Any]] = None) -> dict:
    """The model's config with absolute file paths; precedence: overrides > file metas > files > config.yaml."""
    model_dir = Path(model_dir).resolve()
    overrides = dict(overrides or {})
    metas: dict = {}
    meta_file: dict = {}
    config_path = model_dir / "config.yaml"
    if (model_dir / "configuration.json").is_file():
        meta_file = _read_json(model_dir / "configuration.json")
        metas = _absolute_metas(meta_file.get("file_path_metas") or {}, model_dir)
        config_path = Path(metas.pop("config", config_path))
    if not config_path.is_file():
        for family in registry.families():
            if family.read_config and (model_dir / str(family.config_file)).is_file():
                cfg = deep_merge(registry.resolve(family.read_config)(model_dir), overrides)
                cfg["model_dir"] = str(model_dir)
                return cfg
        raise ConfigError(
            f"{model_dir} is not a FunASR model directory: it has no config.yaml; "
            "pass a directory holding config.yaml and model.pt, or a model name such as 'paraformer-zh'"
        )
    cfg = read_yaml(config_path)
    if "model" not in cfg:
        raise ConfigError(f"{config_path} does not name its model class (no 'model:' entry)")
    cfg = deep_merge(cfg, _present_files(model_dir))
    cfg = deep_merge(cfg, metas)
    cfg = deep_merge(cfg, overrides)
    model_conf = cfg.setdefault("model_conf", {}) or {}
    cfg["model_conf"] = model_conf
    for k, v in overrides.items():  # top-level keyword arguments configure the model (as the reference)
        if k in model_conf:
            model_conf[k] = v
    cfg["model_dir"] = str(model_dir)
    _resolve_cmvn(cfg, model_dir, ((meta_file.get("file_path_metas") or {}).get("frontend_conf") or {}).get("cmvn_file"))
    return cfg


def _resolve_cmvn(cfg: dict, model_dir: Path, named_in_metas: Optional[str]) -> None:
    """Make ``frontend_conf.cmvn_file`` an existing file: a CMVN file named but missing raises, none at all warns.

    Features without their CMVN silently change every result, so a model whose configuration
    names one must have it.
    """
    if "frontend" not in cfg and "frontend_conf" not in cfg:
        return
    conf = cfg.setdefault("frontend_conf", {}) or {}
    cfg["frontend_conf"] = conf
    name = conf.get("cmvn_file") or named_in_metas
    if not name and cfg.get("cmvn"):  # WeNet's global CMVN: statistics inside the encoder (checkpoint buffers)
        return
    if not name:
        log.warning(
            "%s: the configuration names no CMVN file (frontend_conf.cmvn_file, am.mvn): features are not "
            "normalised; if the model was trained with CMVN, add its am.mvn to the folder", model_dir,
        )
        return
    for path in (model_dir / str(name), Path(str(name)).expanduser()):
        if path.is_file():
            conf["cmvn_file"] = str(path)
            return
    raise ConfigError(
        f"{model_dir}: the configuration names the CMVN file {name!r} (frontend_conf.cmvn_file), which does not "
        "exist; features without it would silently change every result: re-download the model or add its am.mvn"
    )
