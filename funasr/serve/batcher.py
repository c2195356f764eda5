"""Streaming chunks of every connection decoded together (``task.decode_streams``), off the event loop.

Each task (the online ASR, the VAD, ...) has a lane: a queue and threads of its own, so one task's
batch never waits for another's, and the engines' native work runs on several cores at once. A lane
splits a large batch into one part per core (at least ``MIN_PART`` streams each), decoded at once:
single-threaded runs side by side use the cores better than one multi-threaded run of small matrices.
A lane never waits for a batch to finish before taking the next: as soon as one of its threads is free it
takes what has arrived meanwhile, so chunks that arrive spread out (independent users) do not queue behind
a batch that another core is still decoding.
"""
from __future__ import annotations

import asyncio
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

log = logging.getLogger(__name__)

MIN_PART = 4  # streams: smaller parts lose more to per-call costs than they gain from another core


def cores(cgroup: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPU cores this process may use: its CPU affinity, bounded by a cgroup CPU quota (a container's ``--cpus``)."""
    n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup)
    return n if quota is None else max(1, min(n, math.ceil(quota)))


def cgroup_cpu_quota(root: Path) -> Optional[float]:
    """CPUs the cgroup under ``root`` allows (v2 ``cpu.max``, v1 ``cpu/cpu.cfs_quota_us``); None: unlimited or unknown."""
    try:
        if (root / "cpu.max").is_file():
            limit, period = (root / "cpu.max").read_text().split()[:2]
            return None if limit == "max" else int(limit) / int(period)
        quota, period = (int((root / "cpu" / name).read_text()) for name in ("cpu.cfs_quota_us", "cpu.cfs_period_us"))
        return quota / period if quota > 0 and period > 0 else None
    except (OSError, ValueError):
        return None


def decode_each(task: Any, streams: list) -> list:
    """``task.decode_streams(streams)``; if the batch fails, each stream alone, so one bad stream fails only itself."""
    try:
        return list(task.decode_streams(streams))
    except Exception:
        if len(streams) == 1:
            raise
    out: list = []
    for stream in streams:
        try:
            out.append(task.decode_streams([stream])[0])
        except Exception as e:  # handed to that stream's connection
            out.append(e)
    return out


@dataclass
class Lane:
    """One task's queue of ``(stream, future)`` requests, the loop that batches them and its threads."""

    task: Any
    executor: ThreadPoolExecutor
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)
    loop_task: Optional[asyncio.Task] = None
    batches: int = 0  # batches taken so far
    running: int = 0  # parts handed to the threads and not finished
    freed: asyncio.Event = field(default_factory=asyncio.Event)  # set when a part finishes


class StreamBatcher:
    """Collects ``decode(task, stream)`` requests from all connections and runs each task's as batches in its own threads."""

    def __init__(self, max_batch: int = 64, wait_ms: float = 2.0, threads: Optional[int] = None) -> None:
        self.max_batch, self.wait_s = max_batch, wait_ms / 1000
        self.threads = threads or cores()  # per lane: a batch is split into at most this many parts
        self.lanes: dict[int, Lane] = {}
        self.started = False

    def start(self) -> None:
        """Accept requests (lanes start on the running event loop as their tasks are first used)."""
        self.started = True

    async def stop(self) -> None:
        """Stop every lane's loop and thread."""
        lanes, self.lanes, self.started = list(self.lanes.values()), {}, False
        for lane in lanes:
            if lane.loop_task is not None:
                lane.loop_task.cancel()
        await asyncio.gather(*(lane.loop_task for lane in lanes if lane.loop_task is not None), return_exceptions=True)
        for lane in lanes:
            lane.executor.shutdown(wait=False, cancel_futures=True)

    @property
    def batches(self) -> int:
        """Batches taken so far, over all tasks."""
        return sum(lane.batches for lane in self.lanes.values())

    async def decode(self, task: Any, stream: Any) -> Any:
        """What is new in ``stream`` (decoded together with other connections' streams of the same task)."""
        assert self.started, "StreamBatcher.start() first"
        lane = self.lanes.get(id(task))
        if lane is None:
            lane = self.lanes[id(task)] = Lane(task, ThreadPoolExecutor(self.threads, thread_name_prefix="funasr-streams"))
            lane.loop_task = asyncio.get_running_loop().create_task(self._run(lane), name="funasr-stream-batcher")
        future = asyncio.get_running_loop().create_future()
        lane.queue.put_nowait((stream, future))
        return await future

    def parts(self, n: int) -> int:
        """Into how many parts a batch of ``n`` streams is split."""
        return max(1, min(self.threads, n // MIN_PART))

    async def _run(self, lane: Lane) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await lane.queue.get()]
            await asyncio.sleep(self.wait_s)  # let the other connections' chunks of this moment join
            while lane.running >= self.threads:  # every thread busy: what arrives meanwhile joins this batch
                lane.freed.clear()
                await lane.freed.wait()
            while len(batch) < self.max_batch and not lane.queue.empty():
                batch.append(lane.queue.get_nowait())
            batch = [b for b in batch if not b[1].cancelled()]  # a connection that went away meanwhile
            if not batch:
                continue
            lane.batches += 1
            size = -(-len(batch) // self.parts(len(batch)))
            for i in range(0, len(batch), size):  # parts beyond the free threads start as the busy ones finish
                part = batch[i : i + size]
                lane.running += 1
                done = loop.run_in_executor(lane.executor, decode_each, lane.task, [s for s, _ in part])
                done.add_done_callback(lambda done, part=part: self._finish(lane, part, done))

    @staticmethod
    def _finish(lane: Lane, part: list, done: asyncio.Future) -> None:
        """Hand a finished part's results to its connections and free its thread."""
        lane.running -= 1
        lane.freed.set()
        if done.cancelled():
            return
        error = done.exception()
        for (_, future), result in zip(part, [error] * len(part) if error else done.result()):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
