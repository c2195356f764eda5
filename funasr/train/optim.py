"""Optimisers and learning-rate schedulers named in a training config (``optim``, ``scheduler``)."""
from __future__ import annotations

import inspect
from typing import Any, Iterable

import torch

from funasr.errors import OptionError

OPTIMIZERS = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "sgd": torch.optim.SGD}


class WarmupLR(torch.optim.lr_scheduler.LRScheduler):
    """FunASR's ``warmuplr``: lr = base_lr * w^0.5 * min(s^-0.5, s * w^-1.5), s = optimizer steps + 1.

    The rate rises linearly for ``warmup_steps`` steps, peaks at ``base_lr``, then decays as 1/sqrt(s).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, warmup_steps: int = 25000, last_epoch: int = -1) -> None:
        self.warmup_steps = warmup_steps
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        """The rate of each parameter group at the current step."""
        s = self.last_epoch + 1
        w = self.warmup_steps
        return [lr * w**0.5 * min(s**-0.5, s * w**-1.5) for lr in self.base_lrs]


SCHEDULERS = {"warmuplr": WarmupLR}


def _check_conf(what: str, name: str, cls: type, conf: dict[str, Any], skip: int) -> None:
    """Raise OptionError for a key of ``conf`` that ``cls`` does not take."""
    params = list(inspect.signature(cls.__init__).parameters)[1 + skip :]
    allowed = [p for p in params if p not in ("last_epoch", "verbose")]
    bad = sorted(k for k in conf if k not in allowed)
    if bad:
        raise OptionError(
            f"{what}_conf.{bad[0]} is not an option of {what} {name!r}; allowed: {', '.join(allowed)}"
        )


def check_optim(optim: Any, optim_conf: dict[str, Any], scheduler: Any, scheduler_conf: dict[str, Any]) -> None:
    """Raise OptionError for an unknown optimiser or scheduler, or a key or value they do not take."""
    if optim not in OPTIMIZERS:
        raise OptionError(f"optim={optim!r} is not allowed: pass one of {', '.join(OPTIMIZERS)}")
    if scheduler not in SCHEDULERS:
        raise OptionError(f"scheduler={scheduler!r} is not allowed: pass one of {', '.join(SCHEDULERS)}")
    _check_conf("optim", optim, OPTIMIZERS[optim], optim_conf, skip=1)
    _check_conf("scheduler", scheduler, SCHEDULERS[scheduler], scheduler_conf, skip=1)
    lr = optim_conf.get("lr", 1e-3)
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not lr > 0:
        raise OptionError(f"optim_conf.lr={lr!r} is not allowed: pass a learning rate > 0, e.g. 0.0005")
    warmup = scheduler_conf.get("warmup_steps", 1)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
        raise OptionError(f"scheduler_conf.warmup_steps={warmup!r} is not allowed: pass an integer >= 1, e.g. 25000")


def build_optimizer(params: Iterable[torch.nn.Parameter], optim: str, optim_conf: dict[str, Any]) -> torch.optim.Optimizer:
    """The optimiser ``optim`` (adam, adamw, sgd) over ``params`` with ``optim_conf`` (lr, betas, weight_decay, ...)."""
    conf = dict(optim_conf)
    if "betas" in conf:
        conf["betas"] = tuple(conf["betas"])
    return OPTIMIZERS[optim](params, **conf)


def build_scheduler(optimizer: torch.optim.Optimizer, scheduler: str, scheduler_conf: dict[str, Any]) -> Any:
    """The scheduler ``scheduler`` (warmuplr) of ``optimizer``."""
    return SCHEDULERS[scheduler](optimizer, **scheduler_conf)
