"""`/v1/chat` (an answer with citations, in JSON or as server-sent events) and `/v1/retrieve`
(retrieval alone, for debugging): each request's options over the service's defaults, and the
metrics of every answer."""

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import StreamingResponse

from mlstack.serve import APIError, error_responses, offload, requires
from rag_chatbot import metrics
from rag_chatbot.answer import Rag, RagConfig
from rag_chatbot.generator import GeneratorError
from rag_chatbot.schemas import (
    ChatRequest,
    ChatResponse,
    CitationOut,
    RetrievalOptions,
    RetrieveRequest,
    RetrieveResponse,
)
from semantic_search.documents import Filters

router = APIRouter(prefix="/v1")
RagDep = Annotated[Rag, Depends(requires("rag"))]


def _config(rag: Rag, body: RetrievalOptions, **extra: Any) -> RagConfig:
    """The service's defaults with the request's options; an explicit `diversify: null` turns
    MMR off."""
    overrides = {k: getattr(body, k) for k in ("k", "mode", "min_relevance")}
    overrides |= extra
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "diversify" in body.model_fields_set:
        overrides["diversify"] = body.diversify
    return replace(rag.config, **overrides)


def _filters(body: RetrievalOptions) -> Filters | None:
    return body.filters.to_filters() if body.filters else None


def _record(event: dict[str, Any]) -> ChatResponse:
    """Metrics for a finished answer, and its response body."""
    retrieval, timings = event["retrieval"], event["timings_ms"]
    metrics.RETRIEVAL_LATENCY.observe(timings["retrieval"] / 1000)
    if "generation" in timings:
        metrics.GENERATION_LATENCY.observe(timings["generation"] / 1000)
    if "first_token" in timings:
        metrics.FIRST_TOKEN_LATENCY.observe(timings["first_token"] / 1000)
    if "rewrite" in timings:
        metrics.REWRITE_LATENCY.observe(timings["rewrite"] / 1000)
    metrics.CHUNKS_USED.observe(len(retrieval.sources))
    if retrieval.top_relevance is not None:
        metrics.TOP_RELEVANCE.observe(retrieval.top_relevance)
    metrics.ANSWERS.labels("no_answer" if event["no_answer"] else "answered").inc()
    for c in event["citations"]:
        metrics.CITATIONS.labels("attributed" if c.attributed else "model").inc()
    citations = [
        CitationOut(
            n=c.n,
            doc_id=c.source.doc_id,
            title=c.source.title,
            file=c.source.file,
            page=c.source.page,
            section=c.source.section,
            snippet=c.source.text,
            attributed=c.attributed,
        )
        for c in event["citations"]
    ]
    return ChatResponse(
        answer=event["answer"],
        no_answer=event["no_answer"],
        query=event["query"],
        citations=citations,
        sources=retrieval.sources,
        invalid_citations=event["invalid_citations"],
        timings_ms=timings,
    )


def _generator_error(exc: GeneratorError) -> APIError:
    metrics.ANSWERS.labels("error").inc()
    headers = {"Retry-After": "2"} if exc.status == 503 else None
    return APIError(exc.status, exc.code, str(exc), headers=headers)


# Each server-sent event: its kind and a JSON `data` line (retrieval, delta, answer or error).
SSE_EVENT = {
    "type": "object",
    "required": ["event", "data"],
    "properties": {
        "event": {"type": "string", "enum": ["retrieval", "delta", "answer", "error"]},
        "data": {"type": "string", "contentMediaType": "application/json"},
    },
}
SSE = {
    200: {
        "description": "JSON, or with `stream: true` server-sent events",
        "content": {"text/event-stream": {"schema": SSE_EVENT}},
    }
}


@router.post(
    "/chat",
    response_model=ChatResponse,
    tags=["chat"],
    responses={**SSE, **error_responses(502, 504)},
)
async def chat(body: ChatRequest, rag: RagDep):
    """Answer the last user message from the documents, citing them as [n] (messages after it
    are ignored, so a client can regenerate an answer). `stream: true`
    answers with server-sent events: `retrieval`, `delta`..., then `answer` (or `error`)."""
    config = _config(rag, body, temperature=body.temperature, answer_tokens=body.max_tokens)
    events = rag.stream(body.conversation(), config, _filters(body))
    if not body.stream:
        try:
            async for event in events:
                if event["type"] == "answer":
                    return _record(event)
        except GeneratorError as exc:
            raise _generator_error(exc) from None
    # Read up to the first token before answering, so an unreachable generator is a clean 502.
    head: list[dict[str, Any]] = []
    try:
        async for event in events:
            head.append(event)
            if event["type"] != "retrieval":
                break
    except GeneratorError as exc:
        raise _generator_error(exc) from None
    return StreamingResponse(
        _sse(head, events), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


async def _sse(head: list[dict], events: AsyncIterator[dict]) -> AsyncIterator[str]:
    async def all_events() -> AsyncIterator[dict]:
        for event in head:
            yield event
        if head[-1]["type"] != "answer":
            async for event in events:
                yield event

    def frame(kind: str, data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    try:
        async for event in all_events():
            if event["type"] == "retrieval":
                yield frame("retrieval", {k: v for k, v in event.items() if k != "type"})
            elif event["type"] == "delta":
                yield frame("delta", {"text": event["text"]})
            else:
                yield frame("answer", _record(event).model_dump())
    except GeneratorError as exc:
        err = _generator_error(exc)
        yield frame("error", {"error": {"code": err.code, "message": err.message}})
    finally:
        await events.aclose()


@router.post("/retrieve", response_model=RetrieveResponse, tags=["chat"])
async def retrieve(body: RetrieveRequest, rag: RagDep) -> RetrieveResponse:
    """Retrieval alone, as /v1/chat would do it (HyDE expansion where configured, no
    rewriting): for debugging relevance."""
    config = _config(rag, body)
    search, expand_ms = await rag.search_query(body.query, config)
    timings = {"expand": expand_ms} if config.expand else {}
    result = await offload(rag.retrieve, search, config, _filters(body), question=body.query)
    metrics.RETRIEVAL_LATENCY.observe(result.timings_ms["retrieval"] / 1000)
    timings |= result.timings_ms
    return RetrieveResponse(
        query=body.query,
        searched=search,
        sources=result.sources,
        candidates=result.candidates,
        top_relevance=result.top_relevance,
        timings_ms={k: round(v, 2) for k, v in timings.items()},
    )
