"""What the engine exchanges with its callers: requests in, deltas out, and the observer's hooks
for metrics. Both engines (engine.py, ov_engine.py) speak it."""

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from llm_chat.sampling import SamplingParams, TokenLogprob


class QueueFullError(Exception):
    pass


@dataclass
class Delta:
    text: str = ""
    tokens: int = 0  # output tokens so far
    finish_reason: str | None = None  # stop | length | cancelled | error
    # With `SamplingParams.logprobs` set: one entry per output token since the last delta (a
    # token whose text is held back, e.g. a possible stop string, comes with a later delta).
    logprobs: list[TokenLogprob] = field(default_factory=list)
    # On the finishing delta: prompt tokens found in the prefix cache; None where the engine
    # cannot tell (OpenVINO keeps it to itself).
    cached: int | None = None


@dataclass
class Request:
    """`emit` runs on the engine thread; asyncio consumers pass `queue` and `loop` instead, and
    get their deltas in batches (see `Engine._flush`)."""

    prompt: list[int]
    params: SamplingParams
    emit: Callable[[Delta], None] | None = None
    queue: asyncio.Queue | None = None
    loop: asyncio.AbstractEventLoop | None = None
    id: int = 0
    created: float = field(default_factory=time.perf_counter)
    cancelled: bool = False


class RequestStream:
    """A request's deltas as an async iterator. Closing it (the client left, a sibling choice
    failed) cancels the request, also before its first delta was read: a generator that never
    started would skip its `finally`, and the request would run to its last token unread."""

    def __init__(self, request: Request, queue: asyncio.Queue) -> None:
        self.request, self._queue, self._done = request, queue, False

    def __aiter__(self) -> "RequestStream":
        return self

    async def __anext__(self) -> Delta:
        if self._done:
            raise StopAsyncIteration
        try:
            delta = await self._queue.get()
        except BaseException:  # cancelled while waiting
            self.request.cancelled = True
            raise
        self._done = bool(delta.finish_reason)
        return delta

    async def aclose(self) -> None:
        self.request.cancelled = True  # the engine ends it at its next step, if still running

    def __del__(self) -> None:  # dropped unread (e.g. `async for` left by `break`)
        self.request.cancelled = True


def deliver(items: list[tuple[asyncio.Queue, Delta]]) -> None:
    for queue, delta in items:
        queue.put_nowait(delta)


class Observer:
    """Hooks for metrics; the defaults do nothing (see metrics.py)."""

    def queued(self, waiting: int, running: int) -> None: ...
    def first_token(self, seconds: float) -> None: ...
    def inter_token(self, seconds: float) -> None: ...
    def finished(self, prompt: int, output: int, seconds: float, reason: str) -> None: ...
    def prefix_cache(self, prompt: int, cached: int) -> None:
        """A prefill: `cached` of its `prompt` tokens came from the prefix cache."""
