"""The RAG chatbot service: chat with citations (plain or server-sent events), documents in and
out, retrieval for debugging. Generation goes to an OpenAI-compatible endpoint (the LLM chat
service by default).

Run: `rag-chatbot serve` (settings from `RAG_CHATBOT_*` variables or `.env`).
"""

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import StreamingResponse

from mlstack.serve import (
    APIError,
    ModelCard,
    create_app,
    error_responses,
    file_sha256,
    offload,
    requires,
)
from mlstack.serving_card import apply_card, warn_if_changed
from rag_chatbot import metrics
from rag_chatbot.answer import Rag, RagConfig
from rag_chatbot.chunking import load_tokenizer
from rag_chatbot.docstore import DocumentStore, Limits, open_registry, seed_index
from rag_chatbot.documents_api import documents
from rag_chatbot.generator import GeneratorError, OpenAIGenerator
from rag_chatbot.library import Library
from rag_chatbot.registry import Registry
from rag_chatbot.schemas import (
    ChatRequest,
    ChatResponse,
    CitationOut,
    RetrievalOptions,
    RetrieveRequest,
    RetrieveResponse,
)
from rag_chatbot.settings import Settings
from rag_chatbot.sqldb import is_postgres_url
from semantic_search.documents import Filters
from semantic_search.encoder import VARIANTS, Encoder
from semantic_search.retrieval import Retriever
from semantic_search.stores import open_store
from semantic_search.stores.base import is_milvus_uri
from semantic_search.stores.seed import stamp_encoder

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


class RetrievalModel:
    """The encoder and index, as the service's readiness and /v1/models see them. Retrieval runs
    in the request's thread (no micro-batcher: a query is one short text)."""

    predict_batch = None

    def __init__(self, rag: Rag, serving: dict[str, Any] | None = None) -> None:
        self.rag = rag
        encoder = rag.retriever.encoder
        path = encoder.model_dir / VARIANTS[encoder.variant]
        sha256 = file_sha256(path)
        serving = serving or {"card": None}
        warn_if_changed(serving, "encoder_sha256", sha256)
        self.card = ModelCard(
            encoder.name,
            encoder.variant,
            str(path),
            sha256,
            extra={"dim": encoder.dim, "serving": serving},
        )

    def warmup(self) -> None:
        # One retrieval loads the index's in-memory copy (BM25 included): seconds, not per query.
        self.rag.retrieve("warm up the index", self.rag.config)


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


def build_app(settings: Settings) -> FastAPI:
    app = create_app(
        title="rag-chatbot",
        settings=settings,
        demo_dir=STATIC,
        load_models=lambda: load(app, settings),
    )
    app.include_router(router)
    app.include_router(documents)
    return app


def registry_location(settings: Settings) -> str | Path:
    """A postgresql:// URL, or the sqlite file's path."""
    if settings.registry is None:
        return settings.uploads_dir / "registry.sqlite"
    value = settings.registry.get_secret_value()
    return value if is_postgres_url(value) else Path(value)


def warn_if_not_shared(registry: Registry, index_uri: str) -> None:
    """A Milvus index is how replicas on several hosts share one store; a sqlite registry cannot
    be shared by them. One replica (any number of workers) is fine, so this warns, not fails:
    the service cannot know how many replicas run."""
    if is_milvus_uri(index_uri) and not registry.db.shared_across_hosts:
        log.warning(
            "the index is Milvus but the document registry is a local sqlite file (%s): "
            "right for one replica only. Replicas on several hosts need "
            "RAG_CHATBOT_REGISTRY=postgresql://... (see the README).",
            registry,
        )


REINDEX = (
    "stop the service and move that index away: it is seeded again from the corpus index "
    "and every kept upload is indexed again with this encoder"
)


def open_documents(settings: Settings) -> tuple[Encoder, DocumentStore]:
    """The encoder and the documents (index + registry + kept files); finishes any write a
    killed process left half-done, so the service reports ready with nothing half-written."""
    if not (settings.encoder_dir / "encoder.json").exists():
        raise FileNotFoundError(f"{settings.encoder_dir} has no encoder: run `dvc repro`")
    encoder = Encoder(
        settings.encoder_dir, variant=settings.encoder_variant, threads=settings.onnx_threads
    )
    local = not is_milvus_uri(settings.index_uri)
    # A missing index is seeded from the corpus and given back every kept upload, by the one
    # worker whose copy lands (or by each, idempotently, when there is no corpus to copy).
    fresh = local and not Path(settings.index_uri).exists()
    no_corpus = settings.corpus_index is None or not settings.corpus_index.exists()
    seeded = fresh and (seed_index(Path(settings.index_uri), settings.corpus_index) or no_corpus)
    registry = Registry(registry_location(settings))
    log.info("document registry: %s", registry)  # never the password: str() leaves it out
    warn_if_not_shared(registry, settings.index_uri)
    lance_options = {"bm25_fields": settings.bm25_fields} if local else {}
    store = open_store(settings.index_uri, encoder.dim, **lance_options)
    if local:  # an index of another encoder's vectors would rank nonsense: refuse to start
        sha256 = file_sha256(settings.encoder_dir / VARIANTS[encoder.variant])
        stamp_encoder(Path(settings.index_uri), encoder, sha256, REINDEX)
    open_registry(
        registry, Path(settings.index_uri) if local else None, settings.uploads_dir, seeded=seeded
    )
    library = Library(
        store,
        encoder,
        None,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.overlap_tokens,
    )
    limits = Limits(
        max_pages=settings.max_pages,
        max_chunks=settings.max_document_chunks,
        max_chars=settings.max_document_chars,
        parse_timeout_s=settings.parse_timeout_s,
        parse_memory_mb=settings.parse_memory_mb,
    )
    docs = DocumentStore(library, registry, settings.uploads_dir, limits)
    docs.reconcile()
    return encoder, docs


def build_rag(settings: Settings) -> tuple[Rag, DocumentStore]:
    """The answering pipeline and the documents over one encoder and index."""
    encoder, docs = open_documents(settings)
    key = settings.generator_api_key.get_secret_value() if settings.generator_api_key else "none"
    generator = OpenAIGenerator(
        settings.generator_url,
        api_key=key,
        model=settings.generator_model,
        timeout_s=settings.generator_timeout_s,
    )
    fusion = {
        k: getattr(settings, k) for k in ("rrf_k", "dense_weight", "bm25_weight", "candidates")
    }
    rag = Rag(
        Retriever(encoder, docs.store, **fusion),
        generator,
        load_tokenizer(settings.generator_tokenizer),
        settings.rag_config(),
    )
    return rag, docs


def serving_settings(settings: Settings) -> tuple[Settings, dict[str, Any]]:
    """The settings with the serving card's configuration (explicit settings win). Containers
    mount the corpus index at a path of their own: that override is expected, not warned."""
    return apply_card(settings, settings.serving_card, quiet=("corpus_index",))


def load(app: FastAPI, settings: Settings) -> list[RetrievalModel]:
    t0 = time.perf_counter()
    settings, serving = serving_settings(settings)
    app.state.settings = settings  # what the routes read is what runs
    rag, docs = build_rag(settings)
    app.state.resources.update(rag=rag, documents=docs)
    model = RetrievalModel(rag, serving)
    model.card.load_seconds = time.perf_counter() - t0
    return [model]


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
