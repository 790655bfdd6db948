"""A bounded pool for CPU work that grows with the input: tokenizing, templating, regexes over
user text, image decoding, document parsing.

Such work on the event loop stalls every other request (and every token stream) for its
duration; in Starlette's default thread pool (40 threads) it is unbounded, so a burst of large
requests queues without limit. Here a fixed number of threads does the work and a fixed number
of calls may wait; past that the caller gets 503 + Retry-After at once.

    tokens = await offload(tokenizer.encode, text)
"""

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from mlstack.serve.errors import APIError

P = ParamSpec("P")
T = TypeVar("T")


def default_workers() -> int:
    return min(4, os.cpu_count() or 1)


class CpuPool:
    def __init__(self, workers: int = 0, max_pending: int = 64) -> None:
        self.workers = workers or default_workers()
        self.max_pending = max_pending
        self.pending = 0  # touched only from the event loop's thread
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="offload")

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.pending >= self.max_pending:
            raise APIError(
                503,
                "busy",
                f"the server is busy: {self.pending} CPU tasks are waiting; retry shortly",
                limit=self.max_pending,
                headers={"Retry-After": "1"},
            )
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(
                self._executor, functools.partial(fn, *args, **kwargs)
            )
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


_pool = CpuPool()


def configure(workers: int = 0, max_pending: int = 64) -> None:
    """Called by `create_app` from the service settings (`cpu_workers`, `cpu_queue`)."""
    global _pool
    if (_pool.workers, _pool.max_pending) != (workers or default_workers(), max_pending):
        old, _pool = _pool, CpuPool(workers, max_pending)
        old.shutdown()


async def offload(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Runs `fn(*args, **kwargs)` in the bounded pool; 503 `busy` when too many calls wait."""
    return await _pool.run(fn, *args, **kwargs)
