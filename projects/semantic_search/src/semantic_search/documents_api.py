"""`/v1/documents` (insert or replace, get, delete: the index's documents by id) and `/v1/stats`
(what the index holds). Writes are serialised per process by the service's write lock."""

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam

from mlstack.fields import ID
from mlstack.serve import APIError, error_responses, offload, requires
from semantic_search import metrics
from semantic_search.api_common import RetrieverDep
from semantic_search.documents import MAX_ID_CHARS, Document
from semantic_search.indexing import document_texts
from semantic_search.schemas import Stats, UpsertRequest, UpsertResponse
from semantic_search.stores import VectorStore

WriteLock = Annotated[asyncio.Lock, Depends(requires("write_lock"))]
DocIdParam = Annotated[str, PathParam(min_length=1, max_length=MAX_ID_CHARS, pattern=ID)]

router = APIRouter(prefix="/v1", tags=["search"])


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
