"""From engine deltas to OpenAI's answers: the whole text, or server-sent events; with the
guards every request needs so none can hang or outlive its client: a stall timeout between
tokens, cancellation when the client hangs up, and errors said as errors."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request, Response

from llm_chat import grammar
from llm_chat.choices import Choice
from llm_chat.engine_api import Delta
from llm_chat.logprobs import TokenText
from llm_chat.safety import REFUSAL, SafetyFilter
from llm_chat.safety_json import JSONOutputStream, screen_json
from mlstack.serve import APIError, offload

T = TypeVar("T")
DISCONNECT_POLL_S = 0.25


def client_gone() -> Response:
    """nginx's "client closed request": logged, never seen by the client that left."""
    return Response(status_code=499)


def usage(prompt: int, choices: list[Choice]) -> dict:
    """Tokens of the prompt (counted once, as OpenAI does for n > 1) and of every choice; the
    prompt tokens found in the prefix cache where the engine tells (the first choice's)."""
    output = sum(c.tokens for c in choices)
    used: dict = {
        "prompt_tokens": prompt,
        "completion_tokens": output,
        "total_tokens": prompt + output,
    }
    if choices and choices[0].cached is not None:
        used["prompt_tokens_details"] = {"cached_tokens": choices[0].cached}
    return used


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
                raise APIError(
                    504,
                    "timeout",
                    f"no token for {seconds:g} s: the server is overloaded or stuck; retry later",
                    limit=seconds,
                ) from None
            _raise_on_failure(delta)
            yield delta
            if delta.finish_reason:
                return
    finally:
        await deltas.aclose()


def _raise_on_failure(delta: Delta) -> None:
    if delta.finish_reason == "error":
        raise APIError(
            500,
            "generation_failed",
            "the model failed while generating this answer (see the server log)",
        )
    if delta.finish_reason == "cancelled":  # only the engine stopping cancels a live request
        raise APIError(
            503, "shutting_down", "the server is shutting down; retry", headers={"Retry-After": "1"}
        )


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


@dataclass
class Answer:
    """What the route needs to shape the answer: the kind, its envelope, what was asked."""

    kind: str  # chat | completion
    meta: dict  # id, created, model
    prompt_tokens: int
    tokens: TokenText | None  # when logprobs were asked
    tools: bool  # split tool calls out of the text
    echo: str = ""  # completions: the prompt, before the completion
    include_usage: bool = False
    # response_format's grammar: the answer is JSON, screened as JSON (safety_json.py)
    structured: grammar.Format | None = None


async def _finish(
    answer: Answer, finish: str | None, masked: bool, text: str, collided: bool = False
) -> str | None:
    """`content_filter` for a JSON answer that masking took off its grammar (a masked string in
    a `format`, `pattern` or `enum`): the client asked for that schema, so the answer must not
    look like it holds to it. Checked only where PII was masked, in the pool (a compile). Also
    where a masked key repeats another of its object (`collided`, safety_json.py)."""
    if answer.structured is None or not masked or finish != "stop":
        return finish
    if collided:
        return "content_filter"
    held = await offload(grammar.follows, answer.structured, text)
    return finish if held else "content_filter"


def _logprobs(answer: Answer, entries: list, offset: int) -> dict | None:
    if answer.tokens is None:
        return None
    if answer.kind == "chat":
        return {"content": answer.tokens.chat(entries)}
    return answer.tokens.completion(entries, offset)


async def collect(
    answer: Answer, deltas: AsyncIterator[tuple[int, Delta]], n: int, safety: SafetyFilter, cpu
) -> dict:
    """The whole answer as one JSON body. `cpu(size, fn, *args)` runs the output screen."""
    choices = [Choice(i, tools=answer.tools) for i in range(n)]
    async for index, delta in deltas:
        choices[index].feed(delta)
    out = []
    for c in choices:
        masked = collided = False
        if answer.structured is None:
            text, refused = await cpu(len(c.content), safety.screen_output, c.content)
        else:
            screened = await cpu(len(c.content), screen_json, safety, c.content)
            text, refused, masked, collided = screened
        finish = "content_filter" if refused else c.finish_reason
        finish = await _finish(answer, finish, masked, text, collided)
        logprobs = _logprobs(answer, c.logprobs, len(answer.echo))
        if answer.kind == "chat":
            message = {"role": "assistant", "content": text}
            if refused and answer.structured is not None:  # the content only ever holds JSON
                message = {"role": "assistant", "content": None, "refusal": REFUSAL}
            if c.calls and not refused:
                message = {
                    "role": "assistant",
                    "content": text or None,
                    "tool_calls": [call.openai() for call in c.calls],
                }
            out.append(
                {
                    "index": c.index,
                    "message": message,
                    "finish_reason": finish,
                    "logprobs": logprobs,
                }
            )
        else:
            out.append(
                {
                    "index": c.index,
                    "text": answer.echo + text,
                    "finish_reason": finish,
                    "logprobs": logprobs,
                }
            )
    obj = "chat.completion" if answer.kind == "chat" else "text_completion"
    used = usage(answer.prompt_tokens, choices)
    return {**answer.meta, "object": obj, "choices": out, "usage": used}


async def sse(
    answer: Answer, deltas: AsyncIterator[tuple[int, Delta]], n: int, safety: SafetyFilter
) -> AsyncIterator[str]:
    """OpenAI's stream: per choice a role chunk, content (and tool call) chunks, a finish chunk;
    usage if asked; [DONE]. A failure after the first chunk is an `error` event (OpenAI's
    clients raise it), then [DONE]."""
    chat = answer.kind == "chat"
    obj = "chat.completion.chunk" if chat else "text_completion"

    def event(choice: dict) -> str:
        return f"data: {json.dumps({**answer.meta, 'object': obj, 'choices': [choice]})}\n\n"

    def chunk(c: Choice, text: str, calls: list, entries: list, finish: str | None) -> str:
        logprobs = _logprobs(answer, entries, c.offset) if entries else None
        c.offset += len(text)
        if not chat:
            return event(
                {"index": c.index, "text": text, "finish_reason": finish, "logprobs": logprobs}
            )
        delta: dict[str, Any] = {"content": text} if text else {}
        if calls:
            delta["tool_calls"] = [
                call.openai(len(c.calls) - len(calls) + i) for i, call in enumerate(calls)
            ]
        return event(
            {"index": c.index, "delta": delta, "finish_reason": finish, "logprobs": logprobs}
        )

    choices = [Choice(i, tools=answer.tools) for i in range(n)]
    structured = answer.structured is not None
    screens = [JSONOutputStream(safety) if structured else safety.output_stream() for _ in range(n)]
    sent: list[list[str]] = [[] for _ in range(n)]  # a JSON answer as sent, to check it
    refused: set[int] = set()
    try:
        for c in choices:
            if chat:
                yield event(
                    {
                        "index": c.index,
                        "delta": {"role": "assistant", "content": ""},
                        "finish_reason": None,
                        "logprobs": None,
                    }
                )
            elif answer.echo:
                yield chunk(c, answer.echo, [], [], None)
        try:
            async for index, delta in deltas:
                if index in refused:
                    continue
                c = choices[index]
                piece = c.feed(delta)
                screen = screens[index]
                text, refusal = screen.push(piece.content, final=bool(piece.finish_reason))
                if text or piece.calls or piece.logprobs:
                    yield chunk(c, text, piece.calls, piece.logprobs, None)
                if structured:
                    sent[index].append(text)
                if refusal:
                    refused.add(index)
                    if structured:  # the content only ever holds JSON (cut short here)
                        said = {"refusal": REFUSAL}
                        none = {"finish_reason": None, "logprobs": None}
                        yield event({"index": index, "delta": said, **none})
                    yield chunk(c, "", [], [], "content_filter")
                    if n == 1:
                        break  # closing the stream cancels the request
                elif piece.finish_reason:
                    json_screen = isinstance(screen, JSONOutputStream)
                    masked = json_screen and screen.masked
                    collided = json_screen and screen.collided
                    text = "".join(sent[index])
                    finish = await _finish(answer, piece.finish_reason, masked, text, collided)
                    yield chunk(c, "", [], [], finish)
        except APIError as err:
            error = {"message": err.message, "type": "server_error", "code": err.code}
            yield f"data: {json.dumps({'error': error})}\n\n"
            yield "data: [DONE]\n\n"
            return
        if answer.include_usage:
            used = usage(answer.prompt_tokens, choices)
            last = {**answer.meta, "object": obj, "choices": [], "usage": used}
            yield f"data: {json.dumps(last)}\n\n"
        yield "data: [DONE]\n\n"
    finally:
        await deltas.aclose()  # a client that hung up cancels its requests in the engine
