"""Checkpoint loading: a FunASR model.pt into a model built from its config."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence, Union

import torch
from torch import nn

from funasr.errors import CheckpointError

_WRAPPERS = ("state_dict", "model_state_dict", "model")


def read_state_dict(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """Read a FunASR ``model.pt`` (or a TorchScript archive's weights, WeNet's ``final.zip``) as a flat state dict."""
    if Path(path).suffix == ".zip" and Path(path).is_file():
        try:
            return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
        except Exception as e:
            raise CheckpointError(f"cannot read the TorchScript archive {path} ({type(e).__name__}); re-download the model") from e
    try:
        try:  # memory-mapped: no second copy, and rows never read (most of a vocabulary) stay on disk
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:  # the legacy (non-zip) format cannot be mapped
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist; pass init_param= or a complete model directory") from None
    except Exception as e:
        if Path(path).is_file() and Path(path).stat().st_size == 0:
            raise CheckpointError(f"checkpoint {path} is empty (0 bytes); re-download the model") from None
        raise CheckpointError(
            f"cannot read checkpoint {path} ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'no details'}); "
            "it is damaged or not a PyTorch state dict: re-download the model"
        ) from e
    for wrapper in _WRAPPERS:
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise CheckpointError(f"checkpoint {path} holds a {type(state).__name__}, not a state dict")
    return {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}


def load_checkpoint(model: nn.Module, path: Union[str, Path], missing_ok: Sequence[str] = ()) -> list[str]:
    """Load ``path`` into ``model``; missing or mis-shaped keys raise CheckpointError. Returns the keys left as they were.

    Keys of ``model`` under the submodules named in ``missing_ok`` (training-only parts such as
    ``ctc``) may be absent from the checkpoint: they keep their values. Keys the model does not
    have are ignored. A model on the meta device takes the checkpoint's tensors themselves
    (memory-mapped, no copy); any other model is copied into, keeping its device and dtype. Weights
    stored in another floating dtype (a release saved in float16 to halve its size) take the model's.
    """
    state = read_state_dict(path)
    expected = model.state_dict()
    optional = tuple(f"{name}." for name in missing_ok)
    kept = [k for k in expected if k not in state and k.startswith(optional)]
    missing = [k for k in expected if k not in state and not k.startswith(optional)]
    mismatched = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or mismatched:
        lines = [f"checkpoint {path} does not fit {type(model).__name__} built from its config:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): " + ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else ""))
        if mismatched:
            lines.append(f"  mis-shaped keys ({len(mismatched)}): " + "; ".join(mismatched[:20]))
        raise CheckpointError("\n".join(lines))
    broken = [k for k in expected if k in state and not _all_finite(state[k])]
    if broken:
        raise CheckpointError(
            f"checkpoint {path} holds NaN or infinite weights in {len(broken)} tensor(s): "
            + ", ".join(broken[:20]) + (" ..." if len(broken) > 20 else "") + "; re-download or re-train the model"
        )
    meta = any(t.is_meta for t in expected.values())
    tensors = {k: _as_dtype(state[k], expected[k].dtype) for k in expected if k in state}
    model.load_state_dict(tensors, strict=not kept, assign=meta)
    return kept


def _as_dtype(tensor: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``tensor`` in the model's floating ``dtype`` (integer buffers stay as they are)."""
    if tensor.is_floating_point() and dtype.is_floating_point and tensor.dtype != dtype:
        return tensor.to(dtype)
    return tensor


def _all_finite(tensor: torch.Tensor, piece: int = 1 << 22) -> bool:
    """Whether every value is finite (integer tensors always are).

    A finite sum proves it (NaN and inf propagate), at the cost of one read; only a non-finite sum
    (a bad value, or an overflow) is checked value by value, in pieces to bound the temporary memory.
    """
    if not tensor.is_floating_point() or bool(torch.isfinite(tensor.sum())):
        return True
    flat = tensor.reshape(-1)
    return all(bool(torch.isfinite(flat[i : i + piece]).all()) for i in range(0, flat.numel(), piece))
