"""A micro-batcher: concurrent requests are queued and run through the model as one batch.

The model sees a plain `list` in and returns a `list` out, in the same order. One worker task per
model pulls up to `max_batch_size` items, waiting at most `max_wait_ms` for the batch to fill, and
runs the model in a thread so the event loop keeps accepting requests.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from mlstack.monitor import metrics
from mlstack.serve.errors import APIError


@dataclass
class _Pending:
    item: Any
    future: asyncio.Future
    enqueued: float = field(default_factory=time.perf_counter)


def _unavailable(code: str, message: str, limit: float | None = None) -> APIError:
    """A 503 that tells the client to come back: the service is busy, not broken."""
    return APIError(503, code, message, limit=limit, headers={"Retry-After": "1"})


class MicroBatcher:
    def __init__(
        self,
        predict_batch: Callable[[list[Any]], Sequence[Any]],
        *,
        name: str,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        queue_size: int = 256,
        timeout_s: float = 30.0,
    ) -> None:
        self.predict_batch = predict_batch
        self.name = name
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self.queue_size = queue_size
        self.timeout_s = timeout_s
        self._queue: asyncio.Queue[_Pending] | None = None
        self._worker: asyncio.Task | None = None

    async def start(self) -> None:
        self._queue = asyncio.Queue(self.queue_size)
        self._worker = asyncio.create_task(self._run(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Lets queued items finish (graceful shutdown), then stops the worker."""
        if self._queue is not None:
            await self._queue.join()
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    @property
    def depth(self) -> int:
        return self._queue.qsize() if self._queue else 0

    async def submit(self, item: Any) -> Any:
        return (await self.submit_many([item]))[0]

    async def submit_many(self, items: list[Any]) -> list[Any]:
        """Queues all items (or none: 503 when they do not fit) and awaits their results."""
        if self._queue is None:
            raise _unavailable("not_ready", f"model {self.name!r} is not loaded yet")
        if self._queue.qsize() + len(items) > self.queue_size:
            metrics.MODEL_REQUESTS.labels(self.name, "rejected").inc()
            raise _unavailable(
                "overloaded",
                f"model {self.name!r} queue is full ({self.queue_size} items); retry shortly",
                limit=self.queue_size,
            )
        loop = asyncio.get_running_loop()
        pending = [_Pending(item, loop.create_future()) for item in items]
        for p in pending:
            self._queue.put_nowait(p)
        metrics.QUEUE_DEPTH.labels(self.name).set(self._queue.qsize())
        start = time.perf_counter()
        try:
            async with asyncio.timeout(self.timeout_s):
                results = await asyncio.gather(*(p.future for p in pending))
        except TimeoutError:
            for p in pending:
                p.future.cancel()
            metrics.MODEL_REQUESTS.labels(self.name, "timeout").inc()
            raise _unavailable(
                "timeout",
                f"model {self.name!r} did not answer within {self.timeout_s:g} s",
                limit=self.timeout_s,
            ) from None
        metrics.MODEL_REQUESTS.labels(self.name, "ok").inc()
        metrics.MODEL_LATENCY.labels(self.name).observe(time.perf_counter() - start)
        return list(results)

    async def _next_batch(self) -> list[_Pending]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.perf_counter() + self.max_wait
        while len(batch) < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                item = (
                    self._queue.get_nowait()
                    if remaining <= 0
                    else await asyncio.wait_for(self._queue.get(), remaining)
                )
            except (TimeoutError, asyncio.QueueEmpty):
                break
            batch.append(item)
        return batch

    async def _run(self) -> None:
        assert self._queue is not None
        while True:
            batch = await self._next_batch()
            live = [p for p in batch if not p.future.done()]  # skip items whose caller timed out
            metrics.QUEUE_DEPTH.labels(self.name).set(self._queue.qsize())
            try:
                if live:
                    await self._run_batch(live)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _run_batch(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        for p in batch:
            metrics.QUEUE_WAIT.labels(self.name).observe(started - p.enqueued)
        metrics.BATCH_SIZE.labels(self.name).observe(len(batch))
        try:
            outputs = await asyncio.to_thread(self.predict_batch, [p.item for p in batch])
            if len(outputs) != len(batch):
                raise RuntimeError(f"model returned {len(outputs)} outputs for {len(batch)} inputs")
        except Exception as exc:  # the model failed: every caller of this batch gets the error
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
            return
        finally:
            metrics.BATCH_LATENCY.labels(self.name).observe(time.perf_counter() - started)
        for p, out in zip(batch, outputs, strict=True):
            if not p.future.done():
                p.future.set_result(out)
