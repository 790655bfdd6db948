"""From engine deltas to OpenAI's answers: the whole text, or server-sent events; with the
guards every request needs so none can hang or outlive its client: a stall timeout between
tokens, cancellation when the client hangs up, and errors said as errors."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from fastapi import Request, Response

from llm_chat.engine import Delta
from llm_chat.safety import SafetyFilter
from mlstack.serve import APIError

T = TypeVar("T")
DISCONNECT_POLL_S = 0.25


def client_gone() -> Response:
    """nginx's "client closed request": logged, never seen by the client that left."""
    return Response(status_code=499)


def usage(prompt: int, output: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


async def within(deltas: AsyncIterator[Delta], seconds: float) -> AsyncIterator[Delta]:
    """`deltas`, ending with a timeout error when none arrives for `seconds`. Closing this
    generator closes `deltas`, which cancels the request in the engine."""
    try:
        while True:
            try:
                async with asyncio.timeout(seconds):
                    delta = await anext(deltas)
            except StopAsyncIteration:
                return
            except TimeoutError:
                raise APIError(504, "timeout", f"no token for {seconds:g} s: the server is "
                               "overloaded or stuck; retry later", limit=seconds) from None  # fmt: skip
            _raise_on_failure(delta)
            yield delta
            if delta.finish_reason:
                return
    finally:
        await deltas.aclose()


def _raise_on_failure(delta: Delta) -> None:
    if delta.finish_reason == "error":
        raise APIError(500, "generation_failed",
                       "the model failed while generating this answer (see the server log)")  # fmt: skip
    if delta.finish_reason == "cancelled":  # only the engine stopping cancels a live request
        raise APIError(503, "shutting_down", "the server is shutting down; retry",
                       headers={"Retry-After": "1"})  # fmt: skip


async def until_disconnected(request: Request, work: Awaitable[T]) -> T | None:
    """`work`'s result, or None once the client has hung up (and `work` is cancelled, which
    frees the request's slot in the engine). Starlette only notices a gone client when it
    writes, and a plain answer writes once, at the end."""
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if done:
                return task.result()
            if await request.is_disconnected():
                return None
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def collect(first: Delta, deltas: AsyncIterator[Delta]) -> tuple[str, Delta]:
    """The whole text and the finishing delta."""
    text, last = first.text, first
    if not first.finish_reason:
        async for last in deltas:
            text += last.text
    return text, last


async def sse(first: Delta, deltas: AsyncIterator[Delta], meta: dict, kind: str, prompt: int,
              body, safety: SafetyFilter) -> AsyncIterator[str]:  # fmt: skip
    """OpenAI's stream: a role chunk, content chunks, a finish chunk, usage if asked, [DONE].
    A failure after the first chunk is an `error` event (OpenAI's clients raise it), then
    [DONE]."""
    obj = "chat.completion.chunk" if kind == "chat" else "text_completion"

    def chunk(text: str | None, finish: str | None, role: bool = False) -> str:
        if kind == "chat":
            delta: dict[str, Any] = {"role": "assistant", "content": ""} if role else {}
            if text:
                delta["content"] = text
            choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish, "logprobs": None}
        return f"data: {json.dumps({**meta, 'object': obj, 'choices': [choice]})}\n\n"

    screen = safety.output_stream()
    last, finish = first, None
    try:
        if kind == "chat":
            yield chunk(None, None, role=True)
        try:
            async for last in _all(first, deltas):
                piece, refused = screen.push(last.text, final=bool(last.finish_reason))
                if piece:
                    yield chunk(piece, None)
                if refused:
                    finish = "content_filter"
                    break
        except APIError as err:
            error = {"message": err.message, "type": "server_error", "code": err.code}
            yield f"data: {json.dumps({'error': error})}\n\n"
            yield "data: [DONE]\n\n"
            return
        yield chunk(None, finish or last.finish_reason)
        if body.stream_options and body.stream_options.include_usage:
            used = {**meta, "object": obj, "choices": [], "usage": usage(prompt, last.tokens)}
            yield f"data: {json.dumps(used)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        await deltas.aclose()  # a client that hung up cancels its request in the engine


async def _all(first: Delta, deltas: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    yield first
    if not first.finish_reason:
        async for delta in deltas:
            yield delta
