"""One choice of an answer, as its deltas arrive: content and tool calls split apart, logprobs
gathered, the finish reason settled; and the merge of `n` choices' streams into one."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from llm_chat.engine_api import Delta, TokenLogprob
from llm_chat.tools import Call, ToolStream


@dataclass
class Piece:
    """What one delta adds to a choice."""

    content: str = ""
    calls: list[Call] = field(default_factory=list)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None


class Choice:
    def __init__(self, index: int, *, tools: bool) -> None:
        self.index = index
        self.split = ToolStream() if tools else None
        self.content, self.calls, self.logprobs = "", [], []
        self.finish_reason: str | None = None
        self.tokens = 0
        self.offset = 0  # characters sent so far (completions' logprobs text_offset)
        self.cached: int | None = None  # prompt tokens from the prefix cache, where known

    def feed(self, delta: Delta) -> Piece:
        content, calls = self.split.push(delta.text) if self.split else (delta.text, [])
        if delta.finish_reason:
            if self.split:
                content += self.split.finish()
            called = delta.finish_reason == "stop" and (self.calls or calls)
            self.finish_reason = "tool_calls" if called else delta.finish_reason
            self.tokens, self.cached = delta.tokens, delta.cached
        self.content += content
        self.calls += calls
        self.logprobs += delta.logprobs
        return Piece(content, calls, delta.logprobs, self.finish_reason)


async def merge(
    firsts: list[Delta], streams: list[AsyncIterator[Delta]]
) -> AsyncIterator[tuple[int, Delta]]:
    """(choice index, delta) from every stream as they come, each stream's first delta first.
    A stream's failure is raised here; leaving early closes every stream (cancelling them)."""
    if len(streams) == 1:
        yield 0, firsts[0]
        if not firsts[0].finish_reason:
            async for delta in streams[0]:
                yield 0, delta
        return
    queue: asyncio.Queue = asyncio.Queue()

    async def pump(index: int, stream: AsyncIterator[Delta]) -> None:
        try:
            async for delta in stream:
                await queue.put((index, delta))
        except Exception as exc:  # re-raised by the reader
            await queue.put((index, exc))

    open_ = [i for i, first in enumerate(firsts) if not first.finish_reason]
    tasks = [asyncio.create_task(pump(i, streams[i])) for i in open_]
    try:
        for index, first in enumerate(firsts):
            yield index, first
        remaining = len(open_)
        while remaining:
            index, item = await queue.get()
            if isinstance(item, Exception):
                raise item
            remaining -= bool(item.finish_reason)
            yield index, item
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for stream in streams:
            await stream.aclose()
