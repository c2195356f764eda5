"""Length-bucketing batch sampler (seeded, rank-aware, resumable) and the DataLoader around it.

Every rank computes the same *global* batches from the list's lengths, ``seed`` and the epoch, with
``world_size`` times the per-rank budget (``batch_size``, ``batch_size_sample_max``; ``sort_size``
is global); each global batch is then dealt out over the ranks (sorted by length, item
``r::world_size`` to rank ``r``). A global batch always has at least W utterances (a batch is
closed only then; a short last batch joins the one before), so every rank gets the same number of
non-empty batches. Hence W processes see exactly the global batches of one process given W times
the budget, whenever that process's batches have at least W utterances each. A resumed run
continues at a global batch position.
"""
from __future__ import annotations

import signal
from typing import Any, Iterator, Optional

import numpy as np
import torch

from funasr.errors import OptionError

BATCH_TYPES = ("token", "length", "example")
GLOBAL_SORT_SAMPLERS = ("EspnetStyleBatchSampler",)  # FunASR's sampler that sorts the whole list


def world() -> tuple[int, int]:
    """(rank, world size) of torch.distributed when initialised, else (0, 1)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class BatchSampler(torch.utils.data.Sampler):
    """Batches of dataset indices for this rank.

    ``batch_type``: ``example`` counts utterances; ``length`` and ``token`` count padded source
    frames (max source_len x utterances, in 10 ms units); with ``token_weight`` > 0 a ``token``
    length also adds ``int(token_weight * target_len)``. Shuffled by ``(seed, epoch)``, then
    sorted by length within buffers of ``sort_size`` utterances (the whole list with
    ``sort_size`` -1; unsorted with 0), then cut greedily; the batch order is shuffled too.
    """

    def __init__(
        self,
        source_len: np.ndarray,
        target_len: np.ndarray,
        batch_size: int,
        batch_type: str = "token",
        sort_size: int = 1024,
        max_token_length: Optional[int] = None,
        batch_size_sample_max: int = 200,
        token_weight: float = 0.0,
        shuffle: bool = True,
        seed: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ) -> None:
        if batch_type not in BATCH_TYPES:
            raise OptionError(f"dataset_conf.batch_type={batch_type!r} is not one of {', '.join(BATCH_TYPES)}")
        if not isinstance(batch_size, int) or batch_size <= 0:
            raise OptionError(f"dataset_conf.batch_size={batch_size!r} must be a positive integer")
        if not isinstance(batch_size_sample_max, int) or batch_size_sample_max <= 0:
            raise OptionError(f"dataset_conf.batch_size_sample_max={batch_size_sample_max!r} must be a positive integer")
        default_rank, default_world = world()
        self.rank = default_rank if rank is None else int(rank)
        self.world_size = default_world if world_size is None else int(world_size)
        if not 0 <= self.rank < self.world_size:
            raise OptionError(f"rank {self.rank} is outside 0..world_size-1 (world_size {self.world_size})")
        self.source_len = np.asarray(source_len, dtype=np.int64)
        self.target_len = np.asarray(target_len, dtype=np.int64)
        self.batch_size, self.batch_type, self.sort_size = batch_size, batch_type, int(sort_size)
        self.max_token_length, self.batch_size_sample_max = max_token_length, batch_size_sample_max
        self.token_weight, self.shuffle, self.seed = float(token_weight), bool(shuffle), int(seed)
        self.epoch = 0
        self.start = 0  # the first global batch of the epoch to yield (set when resuming)
        self._cache: Optional[tuple[int, list[np.ndarray]]] = None

    @classmethod
    def from_conf(cls, dataset: Any, conf: dict, is_training: bool = True, seed: int = 0,
                  rank: Optional[int] = None, world_size: Optional[int] = None) -> "BatchSampler":
        """The sampler FunASR's ``dataset_conf`` describes, over an ``AudioDataset``'s lengths."""
        global_sort = conf.get("batch_sampler") in GLOBAL_SORT_SAMPLERS
        return cls(
            dataset.index.source_len,
            dataset.index.target_len,
            batch_size=conf.get("batch_size", 1),
            batch_type=conf.get("batch_type", "example"),
            sort_size=-1 if global_sort else conf.get("sort_size", 1024),
            max_token_length=conf.get("max_token_length"),
            batch_size_sample_max=conf.get("batch_size_sample_max", 200),
            token_weight=1.2 if global_sort else 0.0,
            shuffle=conf.get("shuffle", True) and is_training,
            seed=seed,
            rank=rank,
            world_size=world_size,
        )

    def set_epoch(self, epoch: int) -> None:
        """Start epoch ``epoch`` from its first batch."""
        self.epoch, self.start = int(epoch), 0

    def state_dict(self, batches_done: int = 0) -> dict:
        """Where to resume: the epoch and the global batch position, ``batches_done`` batches after ``start``."""
        return {"epoch": self.epoch, "start": self.start + int(batches_done), "seed": self.seed, "world_size": self.world_size}

    def load_state_dict(self, state: dict) -> None:
        """Continue at a saved position (the next iteration yields the remaining batches of that epoch)."""
        self.epoch, self.start = int(state["epoch"]), int(state["start"])

    def _lengths(self) -> np.ndarray:
        if self.batch_type == "example":
            return np.ones_like(self.source_len)
        if self.batch_type == "token" and self.token_weight:
            return self.source_len + (self.token_weight * self.target_len).astype(np.int64)
        return self.source_len

    def global_batches(self, epoch: Optional[int] = None) -> list[np.ndarray]:
        """All global batches of an epoch (indices), the same on every rank."""
        epoch = self.epoch if epoch is None else int(epoch)
        if self._cache is not None and self._cache[0] == epoch:
            return self._cache[1]
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.source_len)) if self.shuffle else np.arange(len(self.source_len))
        if self.max_token_length is not None:
            order = order[self.source_len[order] <= self.max_token_length]
        lengths, w = self._lengths(), self.world_size
        if self.batch_type == "example" or self.sort_size == 0:
            buffers = [order]
        else:
            size = len(order) if self.sort_size < 0 else self.sort_size
            buffers = [order[i : i + size] for i in range(0, len(order), max(size, 1))]
        batches: list[np.ndarray] = []
        for buf in buffers:
            if self.batch_type != "example" and self.sort_size != 0:
                buf = buf[np.argsort(lengths[buf], kind="stable")]
            batches += self._cut(buf, lengths, self.batch_size * w, self.batch_size_sample_max * w)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        self._cache = (epoch, batches)
        return batches

    def _cut(self, order: np.ndarray, lengths: np.ndarray, budget: int, max_items: int) -> list[np.ndarray]:
        """Greedy batches of ``order``: padded length x items <= budget, items <= max_items, at least world_size items."""
        batches: list[list[int]] = []
        batch: list[int] = []
        longest = 0
        for idx in order.tolist():
            n = int(lengths[idx])
            fits = max(longest, n) * (len(batch) + 1) <= budget and len(batch) < max_items
            if batch and not fits and len(batch) >= self.world_size:
                batches.append(batch)
                batch, longest = [], 0
            batch.append(idx)
            longest = max(longest, n)
        if batch:
            if len(batch) < self.world_size and batches:  # too few to give every rank one: join the previous batch
                batches[-1] += batch
            else:
                batches.append(batch)
        return [np.array(b, dtype=np.int64) for b in batches]

    def share(self, batch: np.ndarray) -> list[int]:
        """This rank's part of a global batch: its items sorted by length, every world_size-th from ``rank``."""
        ranked = batch[np.lexsort((batch, self.source_len[batch]))]
        return ranked[self.rank :: self.world_size].tolist()

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.global_batches()[self.start :]:
            yield self.share(batch)

    def __len__(self) -> int:
        return max(0, len(self.global_batches()) - self.start)


def _ignore_sigterm(worker_id: int) -> None:
    """A data worker outlives a SIGTERM sent to the whole process group, so the trainer can finish its step and save.

    (It stops as every worker does: at the loader's end, or when the trainer's process is gone.)
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


class DataLoader:
    """torch's DataLoader over an ``AudioDataset`` and a ``BatchSampler`` that knows how far the trainer got.

    Iterating yields batches (funasr.data's layout; ``keys == []`` when all items of a batch were bad);
    ``state_dict()`` after some batches, restored with ``load_state_dict`` before iterating, makes
    the next iteration yield exactly the rest of that epoch.
    """

    def __init__(self, dataset: Any, sampler: BatchSampler, num_workers: int = 0, pin_memory: bool = False,
                 prefetch_factor: Optional[int] = None, persistent_workers: bool = False) -> None:
        self.dataset, self.sampler = dataset, sampler
        self.loader = torch.utils.data.DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=dataset.collate,
            num_workers=num_workers,
            pin_memory=pin_memory,
            prefetch_factor=prefetch_factor if num_workers > 0 else None,
            persistent_workers=persistent_workers and num_workers > 0,
            worker_init_fn=_ignore_sigterm if num_workers > 0 else None,
        )
        self.done = 0  # batches of this epoch the trainer has taken since the sampler's start

    @classmethod
    def from_conf(cls, dataset: Any, conf: dict, is_training: bool = True, seed: int = 0,
                  rank: Optional[int] = None, world_size: Optional[int] = None) -> "DataLoader":
        """The loader FunASR's ``dataset_conf`` describes (``num_workers`` 4 and ``pin_memory`` as FunASR's defaults)."""
        sampler = BatchSampler.from_conf(dataset, conf, is_training, seed, rank, world_size)
        workers = int(conf.get("num_workers", 4))
        return cls(dataset, sampler, workers, bool(conf.get("pin_memory", torch.cuda.is_available())),
                   conf.get("prefetch_factor", 2), bool(conf.get("persistent_workers", False)))

    def set_epoch(self, epoch: int) -> None:
        """Begin epoch ``epoch`` (shuffle order and speed perturbation follow it)."""
        self.sampler.set_epoch(epoch)
        self.dataset.set_epoch(epoch)
        self.done = 0

    def __iter__(self) -> Iterator[dict]:
        self.done = 0
        for batch in self.loader:
            self.done += 1
            yield batch

    def __len__(self) -> int:
        return len(self.sampler)

    def state_dict(self) -> dict:
        """The epoch and the global batch position after the batches taken so far."""
        return self.sampler.state_dict(self.done)

    def load_state_dict(self, state: dict) -> None:
        """Resume at a position from ``state_dict``."""
        self.sampler.load_state_dict(state)
        self.dataset.set_epoch(self.sampler.epoch)
        self.done = 0

    def bad_data(self) -> dict[str, int]:
        """The dataset's counts of skipped / corrected utterances by reason."""
        return self.dataset.bad_data()
