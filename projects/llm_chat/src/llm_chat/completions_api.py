"""`/v1/chat/completions` and `/v1/completions`: screen and plan a request, admit its `n` choices
into the engine together, then answer in JSON or as server-sent events."""

import asyncio
import time
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse

from llm_chat.chat_model import ChatModel
from llm_chat.choices import merge
from llm_chat.engine_api import Delta, QueueFullError
from llm_chat.planning import plan
from llm_chat.responses import Answer, client_gone, collect, sse, until_disconnected, within
from llm_chat.safety import SafetyFilter
from llm_chat.schemas import ChatRequest, CompletionRequest
from llm_chat.settings import Settings
from mlstack.serve import APIError, Hub, error_responses, offload, requires

router = APIRouter(prefix="/v1", tags=["chat"])
INLINE_CHARS = 1024
SafetyDep = Annotated[SafetyFilter, Depends(requires("safety"))]
# 200 is JSON, or with `stream: true` server-sent events: `data: <chunk JSON>` lines, then
# `data: [DONE]`; a failure after the first chunk is a `data: {"error": ...}` line.
SSE_EVENT = {"type": "object", "required": ["data"], "properties": {"data": {"type": "string"}}}
SSE = {
    200: {
        "description": "JSON, or with `stream: true` server-sent events",
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
    }
}
RESPONSES = {**SSE, **error_responses(400, 404, 500, 504)}


def _model(hub: Hub, name: str | None) -> ChatModel:
    # OpenAI clients always send a model; an unknown one is a 404 that lists the loaded ones.
    return hub.get(name).model


async def _cpu(size: int, fn, *args):
    """Screening and tokenizing are linear in the text: ~0.1 s for the largest request, in the
    bounded CPU pool so the event loop keeps streaming. A short text (most chats: about a
    millisecond) runs inline, so it never queues behind large ones in the pool: a short chat
    took 1.1 s behind eight 131k-character requests, 0.1 s inline."""
    return fn(*args) if size <= INLINE_CHARS else await offload(fn, *args)


async def _start(request: Request, streams: list, admitted: list) -> list[Delta] | None:
    """Each choice's first delta (None: the client left). A failure of one choice (a stall, a
    backend error) cancels its siblings before any byte is sent. Either way, the engine's
    requests are closed (`admitted`: a wrapper cancelled before it started never closes them)."""
    firsts = [asyncio.ensure_future(anext(stream)) for stream in streams]
    try:
        started = await until_disconnected(request, asyncio.gather(*firsts))
    except BaseException:
        started = None
        raise
    finally:
        if started is None:
            for first in firsts:  # gather leaves them running; closing a running stream fails
                first.cancel()
            await asyncio.gather(*firsts, return_exceptions=True)
            for stream in [*streams, *admitted]:
                await stream.aclose()
    return started


async def _generate(request: Request, hub: Hub, safety: SafetyFilter, body, kind: str):
    settings: Settings = request.app.state.settings
    model = _model(hub, body.model)
    size = len(body.prompt) if isinstance(body, CompletionRequest) else body.characters()
    body = await _cpu(size, safety.screen_input, body)  # refuses (400) or masks PII
    # Small schemas compile in about a millisecond; large ones go to the pool with the text.
    # The body's bytes count the schemas (response_format, tools) the messages' text leaves
    # out: a 32 KB schema beside a one-word message was checked inline, blocking the loop.
    planned = max(size, len(await request.body()))
    work = await _cpu(planned, plan, model, body, settings.default_max_tokens)
    most = model.engine.backend.slots + model.engine.max_queue
    if len(work.choices) > most:  # a 503 would have the client retry forever
        raise APIError(
            400,
            "invalid_value",
            f"n={len(work.choices)} choices can never run at once on this server: at most {most}",
            param="n",
            limit=most,
        )
    try:  # all `n` choices are admitted together, or none is
        admitted = model.engine.streams(work.prompt, work.choices)
    except QueueFullError as exc:
        raise APIError(
            503,
            "overloaded",
            f"server busy: {exc}; retry shortly",
            limit=settings.max_queue,
            headers={"Retry-After": "1"},
        ) from None
    streams = [within(deltas, settings.stall_timeout_s) for deltas in admitted]
    firsts = await _start(request, streams, admitted)
    if firsts is None:
        return client_gone()
    answer = Answer(
        kind,
        {
            "id": f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{uuid.uuid4().hex[:24]}",
            "created": int(time.time()),
            "model": model.card.name,
        },
        len(work.prompt),
        model.token_text if work.logprobs else None,
        work.tools,
        work.echo,
        bool(body.stream_options and body.stream_options.include_usage),
        None if work.tools else work.choices[0].grammar,  # response_format's: a JSON answer
    )
    deltas = merge(firsts, streams)
    if body.stream:
        return StreamingResponse(
            sse(answer, deltas, len(streams), safety),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    try:
        answered = await until_disconnected(
            request, collect(answer, deltas, len(streams), safety, _cpu)
        )
    finally:
        await deltas.aclose()
    # None: the client hung up; its requests were cancelled, their slots freed
    return client_gone() if answered is None else answered


@router.post("/chat/completions", responses=RESPONSES)
async def chat_completions(body: ChatRequest, request: Request, hub: Hub, safety: SafetyDep):
    """Chat with the model; `stream: true` answers with server-sent events."""
    return await _generate(request, hub, safety, body, "chat")


@router.post("/completions", responses=RESPONSES)
async def completions(body: CompletionRequest, request: Request, hub: Hub, safety: SafetyDep):
    """Plain text completion of `prompt` (no chat template)."""
    return await _generate(request, hub, safety, body, "completion")
