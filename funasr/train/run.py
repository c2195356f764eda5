"""``train(cfg)``: build the network, criterion, data and optimiser a training config names, then run the trainer."""
from __future__ import annotations

import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from funasr import registry
from funasr.errors import ConfigError, OptionError
from funasr.models.checkpoint import load_checkpoint
from funasr.models.network import build_network
from funasr.tasks import frontend_and_tokenizer
from funasr.train import distributed
from funasr.train.checkpoint import average_nbest
from funasr.train.config import freeze_prefixes
from funasr.train.folder import write_model_folder
from funasr.train.optim import build_optimizer, build_scheduler
from funasr.train.trainer import Trainer

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    """Seed python's, numpy's and torch's generators (the same initial weights on every process)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def freeze(model: torch.nn.Module, prefixes: tuple[str, ...]) -> None:
    """Stop gradients of the parameters under ``prefixes`` (``encoder``, ``decoder.decoders.0``, ...)."""
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        hits = [n for n in names if n == prefix or n.startswith(prefix + ".")]
        if not hits:
            tops = sorted({n.split(".")[0] for n in names})
            raise OptionError(f"freeze_param={prefix!r} names no parameter of the model; its parts are: {', '.join(tops)}")
        for name, param in model.named_parameters():
            if name in hits:
                param.requires_grad = False
    if prefixes:
        log.info("frozen: %s", ", ".join(prefixes))


def build_trainer(cfg: dict[str, Any], world: distributed.World, device: torch.device) -> tuple[Trainer, Any]:
    """The trainer of ``cfg`` (network, criterion, optimiser, scheduler, data; resumed when asked) and its training loader."""
    from funasr.data.dataset import AudioDataset
    from funasr.data.sampler import DataLoader

    seed_everything(cfg["seed"])
    output_dir = Path(cfg["output_dir"]).resolve()
    family = registry.family_of(cfg["model"])
    if family.criterion is None:
        raise ConfigError(f"model {cfg['model']!r} cannot be trained here (its family declares no training loss)")
    frontend, tokenizer = frontend_and_tokenizer(cfg)
    model = build_network(cfg, frontend, tokenizer, device=device)
    criterion = registry.resolve(family.criterion)(model, cfg).to(device)  # its own buffers too (class weights)
    if cfg.get("init_param"):
        kept = load_checkpoint(model, cfg["init_param"], missing_ok=criterion.training_parts)
        log.info("initialised from %s%s", cfg["init_param"], f" ({len(kept)} training-only tensors new)" if kept else "")
    freeze(model, freeze_prefixes(cfg.get("freeze_param")))
    optimizer = build_optimizer([p for p in model.parameters() if p.requires_grad], cfg["optim"], cfg["optim_conf"])
    scheduler = build_scheduler(optimizer, cfg["scheduler"], cfg["scheduler_conf"])
    data_conf = cfg["dataset_conf"]
    loaders = []
    for key, training in (("train_data_set_list", True), ("valid_data_set_list", False)):
        if family.dataset:
            dataset = registry.resolve(family.dataset)(cfg, cfg[key], frontend, tokenizer, training)
        else:
            dataset = AudioDataset.from_conf(cfg[key], frontend, tokenizer, data_conf, training, cfg["seed"])
        loaders.append(DataLoader.from_conf(dataset, data_conf, training, cfg["seed"], world.rank, world.size))
    if world.main:
        write_model_folder(cfg, output_dir)
    world.barrier()
    frame_s = getattr(frontend, "frame_shift", 10) * getattr(frontend, "lfr_n", 1) / 1000.0
    trainer = Trainer(model, criterion, optimizer, scheduler, loaders[0], loaders[1], cfg["train_conf"],
                      output_dir, world, device, frame_s)
    latest = output_dir / "model.pt"
    if cfg["train_conf"]["resume"] and latest.is_file():
        trainer.resume(latest)
    return trainer, loaders[0]


def train(cfg: dict[str, Any]) -> Path:
    """Train as ``cfg`` (from :func:`funasr.train.config.load_config`) says; returns the output folder."""
    world, device = distributed.setup(cfg.get("device"))
    try:
        trainer, loader = build_trainer(cfg, world, device)
        try:
            trainer.fit(cfg["train_conf"]["max_epoch"])
        finally:
            trainer.close()
        if world.main:
            bad = loader.bad_data()
            if bad:
                log.warning("bad training data skipped or corrected: %s", ", ".join(f"{k} {v}" for k, v in sorted(bad.items())))
            if cfg["train_conf"]["avg_nbest_model"] > 0:
                average_nbest(trainer.output_dir, cfg["train_conf"]["avg_nbest_model"])
        world.barrier()
        return trainer.output_dir
    finally:
        distributed.teardown(world)
