"""The semantic search service: search, documents, OpenAI-compatible embeddings, stats.

Run: `semantic-search serve` (settings from `SEMANTIC_SEARCH_*` variables or `.env`).
"""

import base64
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from pydantic import Field
from pydantic_settings import SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from mlstack.monitor.inference_log import InferenceLog
from mlstack.serve import APIError, Hub, ModelCard, ServeSettings, create_app, file_sha256
from semantic_search import metrics
from semantic_search.documents import MAX_ID_CHARS
from semantic_search.encoder import VARIANTS, Encoder, Tokenized
from semantic_search.highlight import highlight, query_terms
from semantic_search.indexing import embed_documents
from semantic_search.retrieval import Retriever
from semantic_search.schemas import (
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
from semantic_search.stores import VectorStore, open_store

STATIC = Path(__file__).parent / "static"
READ_ROUTES = (("POST", "/v1/search"), ("POST", "/v1/embeddings"), ("GET", "/v1/documents/"),
               ("GET", "/v1/stats"))  # fmt: skip


class Settings(ServeSettings):
    model_config = SettingsConfigDict(
        **{**ServeSettings.model_config, "env_prefix": "SEMANTIC_SEARCH_"}
    )

    port: int = 8002
    encoder_dir: Path = Path("models/semantic_search/encoder")
    encoder_variant: str = Field("int8", pattern="^(fp32|int8)$")
    index_uri: str = Field(
        "data/semantic_search/index", description="LanceDB folder or Milvus URI."
    )
    reranker_dir: Path | None = Field(
        None,
        description="A cross-encoder exported to ONNX: model.onnx, tokenizer.json, encoder.json.",
    )
    onnx_threads: int = Field(0, ge=0)
    max_documents: int = Field(256, ge=1, description="Documents per upsert request.")
    max_document_chars: int = Field(100_000, ge=1)
    max_inputs: int = Field(256, ge=1, description="Texts per embeddings request.")


class EncoderModel:
    """The encoder as a micro-batched model: items are token id lists, already limit-checked."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        path = encoder.model_dir / VARIANTS[encoder.variant]
        self.card = ModelCard(encoder.name, encoder.variant, str(path), file_sha256(path),
                              extra={"dim": encoder.dim, "max_tokens": encoder.max_tokens})  # fmt: skip

    def predict_batch(self, items: list[list[int]]) -> list[np.ndarray]:
        counts = np.array([len(i) for i in items])
        return list(self.encoder.encode_tokenized(Tokenized(items, counts, counts * 0 > 0)))

    def warmup(self) -> None:
        self.encoder.encode(["warm up the session"])


router = APIRouter(prefix="/v1", tags=["search"])


def _tokenize(encoder: Encoder, texts: list[str], param: str, truncate: bool) -> Tokenized:
    tokens = encoder.tokenize(texts)
    if not truncate and tokens.truncated.any():
        i = int(np.argmax(tokens.truncated))
        where = f"{param}[{i}]" if param == "input" and len(texts) > 1 else param
        raise APIError(400, "too_many_tokens", f"{where} has {tokens.token_counts[i]} tokens, over the "
                       f"limit of {encoder.max_tokens}; shorten it or send truncate=true",
                       param=where, limit=encoder.max_tokens)  # fmt: skip
    return tokens


@router.post("/search", response_model=SearchResponse)
async def search(body: SearchRequest, request: Request, hub: Hub) -> SearchResponse:
    """Dense, BM25 or hybrid search with filters, optional MMR and reranking."""
    retriever: Retriever = request.app.state.retriever
    if not body.query.strip():
        raise APIError(400, "empty_query", "query must not be empty or whitespace", param="query")
    if body.rerank and retriever.reranker is None:
        raise APIError(400, "reranker_unavailable", "no reranker is loaded (set "
                       "SEMANTIC_SEARCH_RERANKER_DIR)", param="rerank")  # fmt: skip
    tokens = _tokenize(retriever.encoder, [body.query], "query", body.truncate)
    vector = None
    if body.mode != "bm25" or body.diversify is not None:
        t0 = time.perf_counter()
        vector = (await hub.get().predict(tokens.ids))[0]
        metrics.ENCODE_LATENCY.observe(time.perf_counter() - t0)
    result = await run_in_threadpool(
        retriever.search, body.query, k=body.k, mode=body.mode, filters=body.filters,
        diversify=body.diversify, rerank=body.rerank, query_vector=vector,
    )  # fmt: skip
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
        log.log({"model": "search", "mode": mode, "query_chars": len(body.query),
                 "query_tokens": int(tokens.token_counts[0]), "results": len(result.hits),
                 "top_score": result.hits[0].score if result.hits else 0.0})  # fmt: skip
    terms = query_terms(body.query)
    hits = []
    for h in result.hits:
        snippet, spans = highlight(h.document.text, terms)
        d = h.document
        hits.append(SearchHit(id=d.id, score=h.score, title=d.title, topic=d.topic, source=d.source,
                              date=d.date, snippet=snippet, highlights=spans, metadata=d.metadata))  # fmt: skip
    timings = {k: round(v, 2) for k, v in result.timings_ms.items()}
    return SearchResponse(query=body.query, mode=body.mode, results=hits,
                          query_tokens=int(tokens.token_counts[0]),
                          truncated=bool(tokens.truncated[0]), timings_ms=timings)  # fmt: skip


@router.post("/embeddings", response_model=EmbeddingsResponse, tags=["openai"])
async def embeddings(body: EmbeddingsRequest, request: Request, hub: Hub) -> EmbeddingsResponse:
    """OpenAI-compatible embeddings (works with the `openai` client's `embeddings.create`)."""
    settings: Settings = request.app.state.settings
    deployment = hub.get(body.model) if body.model else hub.get()
    encoder: Encoder = deployment.model.encoder
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise APIError(400, "empty_input", "input must hold at least one text", param="input")
    if len(texts) > settings.max_inputs:
        raise APIError(400, "too_many_inputs", f"{len(texts)} inputs, over the limit of "
                       f"{settings.max_inputs}", param="input", limit=settings.max_inputs)  # fmt: skip
    if blank := [i for i, t in enumerate(texts) if not t.strip()]:
        raise APIError(
            400, "empty_input", f"input[{blank[0]}] is empty", param=f"input[{blank[0]}]"
        )
    if body.dimensions is not None and body.dimensions != encoder.dim:
        raise APIError(400, "unsupported_dimensions", f"this model returns {encoder.dim} dimensions",
                       param="dimensions", limit=encoder.dim)  # fmt: skip
    tokens = _tokenize(encoder, texts, "input", body.truncate)
    vectors = await deployment.predict(tokens.ids)
    data = [
        Embedding(index=i, embedding=base64.b64encode(np.asarray(v, "<f4").tobytes()).decode()
                  if body.encoding_format == "base64" else v.tolist())
        for i, v in enumerate(vectors)
    ]  # fmt: skip
    used = int(np.minimum(tokens.token_counts, encoder.max_tokens).sum())
    return EmbeddingsResponse(data=data, model=deployment.model.card.name,
                              usage=Usage(prompt_tokens=used, total_tokens=used))  # fmt: skip


@router.post("/documents", response_model=UpsertResponse, tags=["documents"])
async def upsert_documents(body: UpsertRequest, request: Request) -> UpsertResponse:
    """Insert or replace documents by id. Answers only once they are durable in the index."""
    settings: Settings = request.app.state.settings
    retriever: Retriever = request.app.state.retriever
    if len(body.documents) > settings.max_documents:
        raise APIError(400, "too_many_documents", f"{len(body.documents)} documents, over the limit "
                       f"of {settings.max_documents}", param="documents", limit=settings.max_documents)  # fmt: skip
    for i, d in enumerate(body.documents):
        if len(d.text) > settings.max_document_chars:
            raise APIError(400, "document_too_long", f"documents[{i}].text has {len(d.text)} "
                           f"characters, over the limit of {settings.max_document_chars}",
                           param=f"documents[{i}].text", limit=settings.max_document_chars)  # fmt: skip
    ids = [d.id for d in body.documents]
    if len(set(ids)) != len(ids):
        raise APIError(
            400, "duplicate_id", "document ids must be unique within a request", param="documents"
        )

    def write() -> list[str]:
        texts = [f"{d.title}. {d.text}" if d.title else d.text for d in body.documents]
        cut = retriever.encoder.tokenize(texts).truncated
        retriever.store.upsert(body.documents, embed_documents(retriever.encoder, body.documents))
        return [i for i, c in zip(ids, cut, strict=True) if c]

    async with request.app.state.write_lock:
        truncated = await run_in_threadpool(write)
    metrics.DOCUMENTS_WRITTEN.labels("upsert").inc(len(ids))
    return UpsertResponse(upserted=len(ids), ids=ids, truncated_for_embedding=truncated)


DocIdParam = Annotated[str, PathParam(min_length=1, max_length=MAX_ID_CHARS)]


@router.get("/documents/{doc_id:path}", tags=["documents"])
async def get_document(doc_id: DocIdParam, request: Request) -> dict[str, Any]:
    docs = await run_in_threadpool(request.app.state.retriever.store.get, [doc_id])
    if not docs:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    return docs[0].model_dump(mode="json")


@router.delete("/documents/{doc_id:path}", tags=["documents"])
async def delete_document(doc_id: DocIdParam, request: Request) -> dict[str, Any]:
    async with request.app.state.write_lock:
        deleted = await run_in_threadpool(request.app.state.retriever.store.delete, [doc_id])
    if not deleted:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    metrics.DOCUMENTS_WRITTEN.labels("delete").inc()
    return {"id": doc_id, "deleted": True}


@router.get("/stats", response_model=Stats)
async def stats(request: Request) -> Stats:
    retriever: Retriever = request.app.state.retriever
    store: VectorStore = retriever.store
    count, topics = await run_in_threadpool(lambda: (store.count(), store.topics()))
    return Stats(documents=count, topics=topics, backend=store.backend, encoder=retriever.encoder.name,
                 dim=retriever.encoder.dim, max_query_tokens=retriever.encoder.max_tokens)  # fmt: skip


def build_app(settings: Settings) -> FastAPI:
    import asyncio

    app = create_app(title="semantic-search", settings=settings, demo_dir=STATIC,
                     load_models=lambda: load(app, settings), public_routes=READ_ROUTES)  # fmt: skip
    app.state.write_lock = asyncio.Lock()  # one writer per process; LanceDB versions the rest
    app.include_router(router)
    return app


def load(app: FastAPI, settings: Settings) -> list[EncoderModel]:
    if not (settings.encoder_dir / "encoder.json").exists():
        raise FileNotFoundError(f"{settings.encoder_dir} has no encoder: run `dvc repro`")
    encoder = Encoder(settings.encoder_dir, variant=settings.encoder_variant,
                      threads=settings.onnx_threads, batch_size=settings.max_batch_size)  # fmt: skip
    reranker = None
    if settings.reranker_dir:
        from semantic_search.rerank import CrossEncoderReranker

        reranker = CrossEncoderReranker(settings.reranker_dir, threads=settings.onnx_threads)
    app.state.retriever = Retriever(
        encoder, open_store(settings.index_uri, encoder.dim), reranker=reranker
    )
    return [EncoderModel(encoder)]


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
