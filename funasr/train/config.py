"""The training config: FunASR's ``++key=value`` overrides over a model folder or a config yaml, checked.

Precedence (lowest first): the trainer's defaults, the starting model folder's config.yaml (fine-tuning,
``++model=<folder or hub name>``), the yaml of ``--config-path/--config-name`` or ``++config=``, the
command-line overrides. Every key and value the trainer reads is checked here, before any work.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import yaml

from funasr import registry
from funasr.config import deep_merge, resolve_model_dir
from funasr.data import check_dataset_conf
from funasr.errors import ConfigError, OptionError

log = logging.getLogger(__name__)

TRAIN_DEFAULTS: dict[str, Any] = {
    "max_epoch": 100,
    "accum_grad": 1,
    "grad_clip": 10.0,  # <= 0: no clipping
    "grad_clip_type": 2.0,
    "log_interval": 50,
    "validate_interval": None,  # steps between validations + model.pt.ep{E}.{step} checkpoints (also at epoch ends)
    "save_checkpoint_interval": None,  # FunASR's name of the same interval; 5000 when neither is given
    "keep_nbest_models": 500,
    "avg_nbest_model": 10,
    "avg_keep_nbest_models_type": "acc",
    "resume": True,
    "use_fp16": False,
    "use_bf16": False,
    "find_unused_parameters": True,  # DDP: parameters a step may not use (e.g. decoder.embed without glancing)
}

DEFAULTS: dict[str, Any] = {
    "train_conf": TRAIN_DEFAULTS,
    "optim": "adam",
    "optim_conf": {"lr": 0.0005},
    "scheduler": "warmuplr",
    "scheduler_conf": {"warmup_steps": 25000},
    "dataset_conf": {},
    "output_dir": "./outputs",
    "seed": 0,
}

# Top-level keys the trainer itself reads (others must already be in the config, i.e. model parts).
TRAIN_KEYS = (
    "model", "config", "hub", "model_revision", "train_data_set_list", "valid_data_set_list", "dataset", "dataset_conf",
    "train_conf", "optim", "optim_conf", "scheduler", "scheduler_conf", "init_param", "freeze_param", "output_dir",
    "device", "seed", "resume",
)
# FunASR keys for engines this trainer does not have: accepted (a warning names them), with no effect.
IGNORED_KEYS = (
    "use_fsdp", "use_deepspeed", "deepspeed_config", "enable_tf32", "cudnn_enabled", "cudnn_benchmark",
    "cudnn_deterministic", "debug", "use_wandb", "wandb_project", "wandb_team", "wandb_exp_name", "lora_only",
    "lora_details", "effective_save_name_excludes", "reset_gpu_cache", "sharding_strategy", "ngpu", "backend",
    "num_workers_for_valid", "batch_size_for_valid", "data_split_i", "excludes",
)
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_value(text: str) -> Any:
    """An override's value as hydra reads it: YAML scalars and lists, plus numbers like ``5e-4``."""
    if _NUMBER.match(text.strip()):
        number = float(text)
        return int(number) if re.match(r"^[+-]?\d+$", text.strip()) else number
    try:
        return yaml.safe_load(text) if text.strip() else ""
    except yaml.YAMLError:
        return text


def parse_argv(argv: Sequence[str]) -> tuple[Optional[Path], dict[str, Any]]:
    """``--config-path D --config-name F`` and ``++a.b=v`` / ``+a.b=v`` / ``a.b=v`` -> (yaml path or None, nested overrides)."""
    flags: dict[str, str] = {}
    overrides: dict[str, Any] = {}
    args = list(argv)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--config-"):
            name, eq, value = arg.partition("=")
            if name not in ("--config-path", "--config-name", "--config-dir"):
                raise OptionError(f"unknown option {name}; funasr-train takes --config-path, --config-name and ++key=value")
            if not eq:
                if i + 1 >= len(args):
                    raise OptionError(f"{name} needs a value")
                i += 1
                value = args[i]
            flags[name] = value
        else:
            key, eq, value = arg.lstrip("+").partition("=")
            if not eq or not key or not re.match(r"^[A-Za-z_][\w.]*$", key):
                raise OptionError(
                    f"cannot read the argument {arg!r}: pass overrides as ++key=value "
                    "(e.g. ++train_conf.max_epoch=10) or --config-path DIR --config-name FILE.yaml"
                )
            node = overrides
            *parents, last = key.split(".")
            for p in parents:
                if not isinstance(node.setdefault(p, {}), dict):
                    raise OptionError(f"{arg!r}: {p} is given both as a value and as a group of keys")
                node = node[p]
            node[last] = parse_value(value)
        i += 1
    path = None
    if "--config-name" in flags:
        path = Path(flags.get("--config-path", flags.get("--config-dir", "."))) / flags["--config-name"]
        if path.suffix not in (".yaml", ".yml") and not path.is_file():
            path = path.with_name(path.name + ".yaml")
    elif "--config-path" in flags and Path(flags["--config-path"]).is_file():
        path = Path(flags["--config-path"])
    return path, overrides


def read_yaml(path: Path) -> dict:
    """A yaml config file as a dict (ConfigError when missing or not a mapping)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"the config file {path} does not exist (--config-path/--config-name or ++config=)") from None
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the config file {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"the config file {path} does not hold a mapping of settings")
    return data


def _model_classes() -> set[str]:
    return {m for f in registry.families() for m in f.models}


def _absolute(cfg: dict, where: tuple[str, ...]) -> None:
    """Make the file path at ``cfg[where]`` absolute (relative to the working directory), if set."""
    node = cfg
    for key in where[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict) and isinstance(node.get(where[-1]), str) and node[where[-1]]:
        node[where[-1]] = str(Path(node[where[-1]]).expanduser().resolve())


FILE_KEYS = (("tokenizer_conf", "token_list"), ("tokenizer_conf", "seg_dict"), ("frontend_conf", "cmvn_file"), ("init_param",))


def load_config(argv: Sequence[str]) -> dict[str, Any]:
    """The checked training config of a ``funasr-train`` command line."""
    path, overrides = parse_argv(argv)
    if path is None and overrides.get("config"):
        path = Path(str(overrides["config"]))
    file_cfg = read_yaml(path) if path is not None else {}
    top = deep_merge(file_cfg, overrides)
    _check_override_keys(overrides, file_cfg)
    model = top.get("model")
    if not model or not isinstance(model, str):
        raise OptionError(
            "funasr-train needs ++model=: a model folder or hub name to fine-tune (e.g. ++model=paraformer-zh), "
            "or a model class (e.g. Paraformer) with its config (--config-path conf --config-name paraformer.yaml)"
        )
    if model in _model_classes() and not Path(model).is_dir():  # from scratch: the yaml is the whole model
        cfg = top
        for where in FILE_KEYS:
            _absolute(cfg, where)
    else:  # fine-tuning: the starting folder's config (with its files) under the yaml and the overrides
        from funasr.hub import resolve_model

        model_dir = resolve_model(model, hub=str(top.get("hub") or "hf"), revision=top.get("model_revision"))
        for where in FILE_KEYS:
            _absolute(top, where)
        top = {k: v for k, v in top.items() if k != "model"}
        cfg = resolve_model_dir(model_dir, top)
    if cfg.get("model") in _model_classes():
        family = registry.family_of(cfg["model"])
        if family.train_config:  # e.g. WeNet's train.yaml keys in funasr-train's spelling
            cfg = registry.resolve(family.train_config)(cfg)
    cfg = deep_merge(DEFAULTS, cfg)
    if "resume" in cfg:  # FunASR's train_conf.resume, also accepted at the top level
        cfg["train_conf"]["resume"] = cfg.pop("resume")
    check_config(cfg)
    return cfg


def _check_override_keys(overrides: dict[str, Any], file_cfg: dict[str, Any]) -> None:
    """Raise OptionError for an override key that nothing reads (a typo), warn for FunASR's engine keys."""
    for key, value in overrides.items():
        if key in IGNORED_KEYS:
            log.warning("++%s is a FunASR option for an engine funasr-train does not have; ignored", key)
        elif key not in TRAIN_KEYS and key not in file_cfg and not _is_model_key(key):
            raise OptionError(
                f"++{key} is not a training option; the trainer reads: {', '.join(TRAIN_KEYS)} "
                "(plus the model's config keys, e.g. model_conf, encoder_conf, frontend_conf, tokenizer_conf)"
            )
    for key, value in (overrides.get("train_conf") or {}).items():
        if key in IGNORED_KEYS:
            log.warning("++train_conf.%s is a FunASR option for an engine funasr-train does not have; ignored", key)
        elif key not in TRAIN_DEFAULTS:
            raise OptionError(f"++train_conf.{key} is not a trainer option; allowed: {', '.join(TRAIN_DEFAULTS)}")


MODEL_KEYS = ("model_conf", "encoder", "encoder_conf", "decoder", "decoder_conf", "predictor", "predictor_conf",
              "frontend", "frontend_conf", "tokenizer", "tokenizer_conf", "specaug", "specaug_conf", "normalize",
              "normalize_conf", "ctc_conf", "input_size", "seaco_decoder", "seaco_decoder_conf")


def _is_model_key(key: str) -> bool:
    return key in MODEL_KEYS


def _int(minimum: int) -> Callable[[Any], bool]:
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


TRAIN_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "max_epoch": (_int(1), "an integer >= 1"),
    "accum_grad": (_int(1), "an integer >= 1"),
    "grad_clip": (_real, "a number (<= 0 turns clipping off)"),
    "grad_clip_type": (lambda v: _real(v) and v > 0, "a norm order > 0 (2 = Euclidean)"),
    "log_interval": (_int(1), "an integer >= 1"),
    "validate_interval": (_int(0), "an integer >= 0 (0: validate at epoch ends only)"),
    "save_checkpoint_interval": (_int(0), "an integer >= 0 (0: checkpoints at epoch ends only)"),
    "keep_nbest_models": (_int(1), "an integer >= 1"),
    "avg_nbest_model": (_int(0), "an integer >= 0 (0: no averaging)"),
    "avg_keep_nbest_models_type": (lambda v: v in ("acc", "loss"), "'acc' (keep the highest) or 'loss' (the lowest)"),
    "resume": (lambda v: isinstance(v, bool), "true or false"),
    "use_fp16": (lambda v: isinstance(v, bool), "true or false"),
    "use_bf16": (lambda v: isinstance(v, bool), "true or false"),
    "find_unused_parameters": (lambda v: isinstance(v, bool), "true or false"),
}


def check_config(cfg: dict[str, Any]) -> None:
    """Raise OptionError / ConfigError for a missing or bad setting of a merged training config."""
    from funasr.train.optim import check_optim

    train = cfg["train_conf"]
    given = [train[k] for k in ("validate_interval", "save_checkpoint_interval") if train[k] is not None]
    if len(given) == 2 and given[0] != given[1]:
        raise OptionError(
            f"train_conf.validate_interval={train['validate_interval']} and save_checkpoint_interval="
            f"{train['save_checkpoint_interval']} differ: a checkpoint is saved at each validation; give one of them"
        )
    train["validate_interval"] = train["save_checkpoint_interval"] = given[0] if given else 5000
    for key, (ok, allowed) in TRAIN_CHECKS.items():
        if not ok(train[key]):
            raise OptionError(f"train_conf.{key}={train[key]!r} is not allowed: pass {allowed}")
    unknown = sorted(k for k in train if k not in TRAIN_DEFAULTS and k not in IGNORED_KEYS)
    if unknown:
        log.warning("train_conf: ignoring %s (not options of this trainer)", ", ".join(unknown))
    if train["use_fp16"] and train["use_bf16"]:
        raise OptionError("train_conf.use_fp16 and train_conf.use_bf16 are both true: pick one")
    if not isinstance(cfg.get("seed"), int) or isinstance(cfg.get("seed"), bool):
        raise OptionError(f"seed={cfg.get('seed')!r} is not allowed: pass an integer")
    for key in ("optim_conf", "scheduler_conf", "dataset_conf"):
        if not isinstance(cfg.get(key), dict):
            raise OptionError(f"{key}={cfg.get(key)!r} is not allowed: pass a group of settings (++{key}.name=value)")
    check_optim(cfg["optim"], cfg["optim_conf"], cfg["scheduler"], cfg["scheduler_conf"])
    if cfg["model"] not in _model_classes():
        registry.family_of(cfg["model"])  # raises ConfigError naming the known models
    audio = not registry.family_of(cfg["model"]).dataset  # text models bring their own dataset (and need no frontend)
    if audio:
        for warning in check_dataset_conf(cfg.get("dataset"), cfg["dataset_conf"]):
            log.warning(warning)
    needs = ("frontend", "tokenizer") if audio else ("tokenizer",)
    for key in needs:
        if not cfg.get(key):
            raise ConfigError(f"the config of model {cfg['model']!r} names no {key}; training needs {' and '.join(needs)}")
    token_list = (cfg.get("tokenizer_conf") or {}).get("token_list")
    if not token_list:
        raise ConfigError("the config has no token list: pass ++tokenizer_conf.token_list=tokens.json (or tokens.txt)")
    if isinstance(token_list, str) and not Path(token_list).is_file():
        raise ConfigError(f"tokenizer_conf.token_list={token_list!r} does not exist; pass the token list file")
    cmvn = (cfg.get("frontend_conf") or {}).get("cmvn_file")
    if cmvn and not Path(cmvn).is_file():
        raise ConfigError(f"frontend_conf.cmvn_file={cmvn!r} does not exist; pass the am.mvn file (funasr-compute-cmvn makes one)")
    for key in ("train_data_set_list", "valid_data_set_list"):
        value = cfg.get(key)
        if not value or not isinstance(value, str):
            raise OptionError(f"{key}={value!r} is not allowed: pass a jsonl file (scp2jsonl makes one) or a list of jsonl files")
        if not Path(value).is_file():
            raise OptionError(f"{key}={value!r}: the file does not exist")
    init = cfg.get("init_param")
    if init is not None and (not isinstance(init, str) or not Path(init).is_file()):
        raise OptionError(f"init_param={init!r}: the checkpoint file does not exist")
    device = cfg.get("device")
    if device is not None and not (isinstance(device, str) and re.match(r"^(cpu|cuda)(:\d+)?$", device)):
        raise OptionError(f"device={device!r} is not allowed: pass cpu or cuda (each torchrun process takes cuda:LOCAL_RANK)")
    output_dir = cfg.get("output_dir")
    if not output_dir or not isinstance(output_dir, str):
        raise OptionError(f"output_dir={output_dir!r} is not allowed: pass the folder to write the model to")
    if Path(output_dir).exists() and not Path(output_dir).is_dir():
        raise OptionError(f"output_dir={output_dir!r} is a file; pass a folder")


def freeze_prefixes(value: Any) -> tuple[str, ...]:
    """``freeze_param`` as FunASR takes it ("encoder,predictor", a list, or one name) -> name prefixes."""
    if value is None or value == "":
        return ()
    items = value if isinstance(value, (list, tuple)) else str(value).strip("()[] ").split(",")
    return tuple(str(v).strip().strip("'\"") for v in items if str(v).strip())
