"""torch.distributed as ``torchrun`` sets it up: the process group, the device of each process, reductions."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional

import torch
import torch.distributed as dist

from funasr.errors import OptionError


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (``rank`` 0 of 1 without torchrun)."""

    rank: int = 0
    local_rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes files, logs and the progress bar."""
        return self.rank == 0

    def sum(self, values: list[float], device: torch.device) -> list[float]:
        """``values`` summed over the processes (themselves with one process)."""
        if self.size == 1:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.tolist()

    def min(self, value: int, device: torch.device) -> int:
        """The smallest ``value`` over the processes."""
        if self.size == 1:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def barrier(self) -> None:
        """Wait for every process (nothing with one)."""
        if self.size > 1:
            dist.barrier()


def setup(device: Optional[str]) -> tuple[World, torch.device]:
    """Join torchrun's process group (``WORLD_SIZE`` > 1: nccl on GPU, gloo on CPU) and pick this process's device."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    kind = (device or ("cuda" if torch.cuda.is_available() else "cpu")).split(":")[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise OptionError("device=cuda, but torch sees no CUDA device here; pass ++device=cpu")
    if kind == "cuda":
        index = local_rank if size > 1 or device in (None, "cuda") else int(str(device).split(":")[1])
        torch.cuda.set_device(index)
        where = torch.device("cuda", index)
    else:
        where = torch.device("cpu")
    if size > 1 and not dist.is_initialized():
        dist.init_process_group(backend="nccl" if kind == "cuda" else "gloo", init_method="env://")
    return World(rank, local_rank, size), where


def teardown(world: World) -> None:
    """Leave the process group."""
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
