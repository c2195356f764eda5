"""One loop decodes the streaming chunks of every connection together (``task.decode_streams``), off the event loop."""
from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Optional

log = logging.getLogger(__name__)


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


class StreamBatcher:
    """Collects ``decode(task, stream)`` requests from all connections and runs them as batches in one thread."""

    def __init__(self, max_batch: int = 64, wait_ms: float = 2.0) -> None:
        self.max_batch, self.wait_s = max_batch, wait_ms / 1000
        self.queue: Optional[asyncio.Queue] = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="funasr-streams")
        self.loop_task: Optional[asyncio.Task] = None
        self.batches = 0  # batches decoded so far (for /health)

    def start(self) -> None:
        """Start the loop on the running event loop."""
        self.queue = asyncio.Queue()
        self.loop_task = asyncio.get_running_loop().create_task(self._run(), name="funasr-stream-batcher")

    async def stop(self) -> None:
        """Stop the loop and its thread."""
        if self.loop_task is not None:
            self.loop_task.cancel()
            await asyncio.gather(self.loop_task, return_exceptions=True)
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def decode(self, task: Any, stream: Any) -> Any:
        """What is new in ``stream`` (decoded together with other connections' streams of the same task)."""
        future = asyncio.get_running_loop().create_future()
        assert self.queue is not None, "StreamBatcher.start() first"
        self.queue.put_nowait((task, stream, future))
        return await future

    async def _run(self) -> None:
        assert self.queue is not None
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            await asyncio.sleep(self.wait_s)  # let the other connections' chunks of this moment join
            while len(batch) < self.max_batch and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            batch = [b for b in batch if not b[2].cancelled()]  # a connection that went away meanwhile
            groups: dict[int, list] = {}
            for item in batch:
                groups.setdefault(id(item[0]), []).append(item)
            for items in groups.values():
                task = items[0][0]
                try:
                    results = await loop.run_in_executor(self.executor, decode_each, task, [s for _, s, _ in items])
                except Exception as e:
                    results = [e] * len(items)
                self.batches += 1
                for (_, _, future), result in zip(items, results):
                    if future.done():
                        continue
                    if isinstance(result, Exception):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
