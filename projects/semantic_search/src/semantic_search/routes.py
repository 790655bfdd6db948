"""The HTTP routes. They reach what the service loaded only through `requires` (503 + Retry-After
until it is there), and do input-sized CPU work (tokenizing, highlighting, embedding, index
reads) in the bounded pool (`offload`), never on the event loop."""

import asyncio
import base64
import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError

from mlstack.monitor.inference_log import InferenceLog
from mlstack.serve import APIError, Hub, error_responses, offload, requires
from mlstack.serve.errors import error_response, validation_error
from semantic_search import metrics
from semantic_search.documents import MAX_ID_CHARS, NO_NUL, NOT_BLANK, Document
from semantic_search.encoder import Encoder, Tokenized
from semantic_search.highlight import highlight, query_terms
from semantic_search.indexing import document_texts
from semantic_search.retrieval import Retriever, SearchResult
from semantic_search.schemas import (
    TOKEN_IDS,
    Embedding,
    EmbeddingsRequest,
    EmbeddingsResponse,
    SearchHit,
    SearchRequest,
    SearchResponse,
    Stats,
    UpsertRequest,
    UpsertResponse,
    Usage,
)
from semantic_search.stores import VectorStore

RetrieverDep = Annotated[Retriever, Depends(requires("retriever"))]
WriteLock = Annotated[asyncio.Lock, Depends(requires("write_lock"))]
DocIdParam = Annotated[
    str, PathParam(min_length=1, max_length=MAX_ID_CHARS, pattern=NOT_BLANK), NO_NUL
]

router = APIRouter(prefix="/v1", tags=["search"])


def install_validation_handler(app: FastAPI) -> None:
    """Schema errors as mlstack answers them (422), except token-id embeddings input: a 400 with
    the client setting that sends text, found before any tokenizing or encoding."""

    def handler(request: Request, exc: RequestValidationError):
        errors = list(exc.errors())
        token_ids = next((e for e in errors if e.get("type") == TOKEN_IDS), None)
        if token_ids is not None:
            return error_response(
                request, APIError(400, TOKEN_IDS, token_ids["msg"], param="input")
            )
        content_type = request.headers.get("content-type")
        return error_response(request, validation_error(errors, content_type))

    app.add_exception_handler(RequestValidationError, handler)


def _tokenize(encoder: Encoder, texts: list[str], param: str, truncate: bool) -> Tokenized:
    tokens = encoder.tokenize(texts)
    if not truncate and tokens.truncated.any():
        i = int(np.argmax(tokens.truncated))
        where = f"{param}[{i}]" if param == "input" and len(texts) > 1 else param
        raise APIError(
            400,
            "too_many_tokens",
            f"{where} has {tokens.token_counts[i]} tokens, over the "
            f"limit of {encoder.max_tokens}; shorten it or send truncate=true",
            param=where,
            limit=encoder.max_tokens,
        )
    return tokens


def _hits(query: str, result: SearchResult) -> list[SearchHit]:
    """Snippets with highlights: regex work over up to k whole documents, so off the loop."""
    terms = query_terms(query)
    hits = []
    for h in result.hits:
        snippet, spans = highlight(h.document.text, terms)
        d = h.document
        hits.append(
            SearchHit(
                id=d.id,
                score=h.score,
                title=d.title,
                topic=d.topic,
                source=d.source,
                date=d.date,
                snippet=snippet,
                highlights=spans,
                metadata=d.metadata,
            )
        )
    return hits


@router.post("/search", response_model=SearchResponse, responses=error_responses(400))
async def search(
    body: SearchRequest, request: Request, hub: Hub, retriever: RetrieverDep
) -> SearchResponse:
    """Dense, BM25 or hybrid search with filters, optional MMR and reranking. 400 for `rerank`
    without a reranker (the schema then allows only false) and for a query over the token
    window with `truncate: false`."""
    if body.rerank and retriever.reranker is None:
        raise APIError(
            400,
            "reranker_unavailable",
            "no reranker is loaded (set SEMANTIC_SEARCH_RERANKER_DIR)",
            param="rerank",
        )
    tokens = await offload(_tokenize, retriever.encoder, [body.query], "query", body.truncate)
    vector = None
    if body.mode != "bm25" or body.diversify is not None:
        t0 = time.perf_counter()
        vector = (await hub.get().predict(tokens.ids))[0]
        metrics.ENCODE_LATENCY.observe(time.perf_counter() - t0)
    result = await offload(
        retriever.search,
        body.query,
        k=body.k,
        mode=body.mode,
        filters=body.filters,
        diversify=body.diversify,
        rerank=body.rerank,
        query_vector=vector,
    )
    mode = str(body.mode)
    metrics.SEARCHES.labels(mode).inc()
    metrics.SEARCH_LATENCY.labels(mode).observe(result.timings_ms["search"] / 1000)
    metrics.RESULTS.labels(mode).observe(len(result.hits))
    if not result.hits:
        metrics.ZERO_RESULTS.labels(mode).inc()
    else:
        metrics.TOP_SCORE.labels(mode).observe(result.hits[0].score)
    log: InferenceLog | None = request.app.state.inference_log
    if log is not None:
        log.log(
            {
                "model": "search",
                "mode": mode,
                "query_chars": len(body.query),
                "query_tokens": int(tokens.token_counts[0]),
                "results": len(result.hits),
                "top_score": result.hits[0].score if result.hits else 0.0,
            }
        )
    timings = {k: round(v, 2) for k, v in result.timings_ms.items()}
    return SearchResponse(
        query=body.query,
        mode=body.mode,
        results=await offload(_hits, body.query, result),
        query_tokens=int(tokens.token_counts[0]),
        truncated=bool(tokens.truncated[0]),
        timings_ms=timings,
    )


@router.post(
    "/embeddings",
    response_model=EmbeddingsResponse,
    tags=["openai"],
    responses=error_responses(400, 404),
)
async def embeddings(body: EmbeddingsRequest, request: Request, hub: Hub) -> EmbeddingsResponse:
    """OpenAI-compatible embeddings (the `openai` client's `embeddings.create`, LangChain's
    `OpenAIEmbeddings(check_embedding_ctx_length=False)`). 400 for token-id input, `dimensions`
    other than the model's, a text over the token window (unless `truncate`) or a request over
    the token budget."""
    settings = request.app.state.settings
    deployment = hub.get(body.model) if body.model else hub.get()
    encoder: Encoder = deployment.model.encoder
    texts = [body.input] if isinstance(body.input, str) else body.input
    if len(texts) > settings.max_inputs:
        raise APIError(
            400,
            "too_many_inputs",
            f"{len(texts)} inputs, over the limit of {settings.max_inputs}",
            param="input",
            limit=settings.max_inputs,
        )
    if body.dimensions is not None and body.dimensions != encoder.dim:
        raise APIError(
            400,
            "unsupported_dimensions",
            f"this model returns {encoder.dim} dimensions",
            param="dimensions",
            limit=encoder.dim,
        )
    tokens = await offload(_tokenize, encoder, texts, "input", body.truncate)
    used = int(np.minimum(tokens.token_counts, encoder.max_tokens).sum())
    if used > settings.max_request_tokens:
        raise APIError(
            400,
            "too_many_tokens",
            f"the inputs hold {used} tokens, over the budget of "
            f"{settings.max_request_tokens} per request; split them",
            param="input",
            limit=settings.max_request_tokens,
        )
    vectors = await deployment.predict(tokens.ids)
    data = [
        Embedding(
            index=i,
            embedding=base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else v.tolist(),
        )
        for i, v in enumerate(vectors)
    ]
    return EmbeddingsResponse(
        data=data,
        model=deployment.model.card.name,
        usage=Usage(prompt_tokens=used, total_tokens=used),
    )


def _check_upsert(documents: list[Document], settings) -> None:
    if len(documents) > settings.max_documents:
        raise APIError(
            400,
            "too_many_documents",
            f"{len(documents)} documents, over the limit of {settings.max_documents}",
            param="documents",
            limit=settings.max_documents,
        )
    for i, d in enumerate(documents):
        if len(d.text) > settings.max_document_chars:
            raise APIError(
                400,
                "document_too_long",
                f"documents[{i}].text has {len(d.text)} "
                f"characters, over the limit of {settings.max_document_chars}",
                param=f"documents[{i}].text",
                limit=settings.max_document_chars,
            )
    ids = [d.id for d in documents]
    if len(set(ids)) != len(ids):
        # 409, not 400: no JSON Schema can say "unique by id", so the schema admits the request.
        raise APIError(
            409, "duplicate_id", "document ids must be unique within a request", param="documents"
        )


@router.post(
    "/documents",
    response_model=UpsertResponse,
    tags=["documents"],
    responses=error_responses(400, 409),
)
async def upsert_documents(
    body: UpsertRequest, request: Request, retriever: RetrieverDep, write_lock: WriteLock
) -> UpsertResponse:
    """Insert or replace documents by id. Answers only once they are durable in the index."""
    _check_upsert(body.documents, request.app.state.settings)
    ids = [d.id for d in body.documents]
    encoder = retriever.encoder
    texts = document_texts(body.documents)
    # Embedding is the slow part and needs no lock; only the write is serialised per process.
    tokens = await offload(encoder.tokenize, texts)
    vectors = await offload(encoder.encode_tokenized, tokens)
    async with write_lock:
        await offload(retriever.store.upsert, body.documents, vectors)
    metrics.DOCUMENTS_WRITTEN.labels("upsert").inc(len(ids))
    truncated = [i for i, c in zip(ids, tokens.truncated, strict=True) if c]
    return UpsertResponse(upserted=len(ids), ids=ids, truncated_for_embedding=truncated)


@router.get("/documents/{doc_id:path}", tags=["documents"], responses=error_responses(404))
async def get_document(doc_id: DocIdParam, retriever: RetrieverDep) -> dict[str, Any]:
    docs = await offload(retriever.store.get, [doc_id])
    if not docs:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    return docs[0].model_dump(mode="json")


@router.delete("/documents/{doc_id:path}", tags=["documents"], responses=error_responses(404))
async def delete_document(
    doc_id: DocIdParam, retriever: RetrieverDep, write_lock: WriteLock
) -> dict[str, Any]:
    async with write_lock:
        deleted = await offload(retriever.store.delete, [doc_id])
    if not deleted:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    metrics.DOCUMENTS_WRITTEN.labels("delete").inc()
    return {"id": doc_id, "deleted": True}


@router.get("/stats", response_model=Stats)
async def stats(retriever: RetrieverDep) -> Stats:
    store: VectorStore = retriever.store
    count, topics = await offload(lambda: (store.count(), store.topics()))
    return Stats(
        documents=count,
        topics=topics,
        backend=store.backend,
        encoder=retriever.encoder.name,
        dim=retriever.encoder.dim,
        max_query_tokens=retriever.encoder.max_tokens,
    )
