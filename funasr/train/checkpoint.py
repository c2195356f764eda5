"""Training checkpoints: ``model.pt`` (resume), ``model.pt.ep{E}``, ``model.pt.best``, n-best pruning, averaging.

A checkpoint is FunASR's layout, a dict whose ``state_dict`` holds the weights (``AutoModel`` and
``init_param`` read it) beside the training state: optimizer, scheduler, scaler, counters, the
sampler position and the random number generators. Only tensors, numbers, strings and containers are
stored, so every file loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np
import torch

from funasr.errors import CheckpointError, OptionError
from funasr.models.checkpoint import read_state_dict

log = logging.getLogger(__name__)


def rng_state() -> dict[str, Any]:
    """The states of python's, numpy's and torch's (CPU and CUDA) random generators."""
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [name, torch.from_numpy(np.asarray(keys, dtype=np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the generators saved by :func:`rng_state`."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` to ``path`` atomically (a reader never sees a half-written file)."""
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path: Path) -> dict[str, Any]:
    """A training checkpoint written by :func:`save` (CheckpointError when it cannot be read)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"cannot resume from {path} ({type(e).__name__}: {e}); delete it to start afresh") from e
    if not isinstance(state, dict) or "state_dict" not in state or "optimizer" not in state:
        raise CheckpointError(f"{path} is not a training checkpoint (no optimizer state); delete it to start afresh")
    return state


class NBest:
    """The epoch checkpoints kept on disk, best first by validation ``acc`` (max) or ``loss`` (min)."""

    def __init__(self, metric: str, keep: int, scores: Optional[dict[str, float]] = None) -> None:
        self.metric, self.keep = metric, keep
        self.scores: dict[str, float] = dict(scores or {})  # checkpoint file name -> validation metric

    def ranked(self) -> list[str]:
        """File names, best first."""
        def badness(name: str) -> float:
            score = self.scores[name]
            return float("inf") if score != score else -score if self.metric == "acc" else score  # NaN: the worst

        return sorted(self.scores, key=badness)

    def add(self, name: str, score: float, output_dir: Path) -> bool:
        """Record ``name``; delete the files that fall out of the best ``keep``. True when ``name`` is the new best."""
        self.scores[name] = score
        ranked = self.ranked()
        for dropped in ranked[self.keep :]:
            (output_dir / dropped).unlink(missing_ok=True)
            del self.scores[dropped]
            log.info("removed %s (not among the best %d by validation %s)", dropped, self.keep, self.metric)
        return ranked[0] == name


def average_state_dicts(paths: Iterable[Union[str, Path]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of the weights of ``paths`` (integer tensors are summed, as FunASR does)."""
    paths = list(paths)
    if not paths:
        raise OptionError("averaging needs at least one checkpoint")
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    for path in paths:
        state = read_state_dict(path)
        if total and state.keys() != total.keys():
            raise CheckpointError(f"{path} holds other weights than {paths[0]}; average checkpoints of one model")
        for k, v in state.items():
            v = v.detach().to("cpu")
            dtypes.setdefault(k, v.dtype)
            if k in total:
                total[k] += v if not v.is_floating_point() else v.double()
            else:
                total[k] = v.clone() if not v.is_floating_point() else v.double()
    return {k: (v / len(paths)).to(dtypes[k]) if v.is_floating_point() else v for k, v in total.items()}


def average_nbest(output_dir: Union[str, Path], n: int) -> Path:
    """Average the ``n`` best epoch checkpoints of a training folder (by its recorded validation) into ``model.pt.avg{n}``."""
    output_dir = Path(output_dir)
    latest = output_dir / "model.pt"
    if not latest.is_file():
        raise OptionError(f"{output_dir} holds no model.pt: pass the output_dir of a funasr-train run")
    state = load(latest)
    nbest = NBest(state["nbest_metric"], len(state["nbest"]), state["nbest"])
    ranked = [name for name in nbest.ranked() if (output_dir / name).is_file()]
    if not ranked:
        raise OptionError(f"{output_dir} holds no epoch checkpoints (model.pt.ep*) to average")
    chosen = ranked[:n]
    if len(chosen) < n:
        log.warning("averaging the %d checkpoints there are, not %d", len(chosen), n)
    out = output_dir / f"model.pt.avg{n}"
    save({"state_dict": average_state_dicts(output_dir / name for name in chosen)}, out)
    log.info("averaged %s into %s", ", ".join(chosen), out)
    return out
