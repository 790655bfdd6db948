"""The RAG chatbot service: chat with citations (plain or server-sent events), documents in and
out, retrieval for debugging. Generation goes to an OpenAI-compatible endpoint (the LLM chat
service by default).

Run: `rag-chatbot serve` (settings from `RAG_CHATBOT_*` variables or `.env`).
"""

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.responses import StreamingResponse
from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict
from starlette.concurrency import run_in_threadpool

from mlstack.serve import APIError, ModelCard, ServeSettings, create_app, file_sha256
from rag_chatbot import metrics
from rag_chatbot.answer import Rag, RagConfig, Source
from rag_chatbot.chunking import load_tokenizer
from rag_chatbot.extract import ExtractError
from rag_chatbot.generator import GeneratorError, OpenAIGenerator
from rag_chatbot.library import MAX_DOC_ID_CHARS, DocumentInfo, Library
from rag_chatbot.schemas import (
    ChatRequest,
    ChatResponse,
    CitationOut,
    DocumentList,
    RetrievalOptions,
    RetrieveRequest,
    RetrieveResponse,
    UploadResponse,
)
from rag_chatbot.uploads import Uploads, seed_index
from semantic_search.encoder import VARIANTS, Encoder
from semantic_search.retrieval import Retriever
from semantic_search.stores import open_store

STATIC = Path(__file__).parent / "static"
READ_ROUTES = (("GET", "/v1/documents"), ("GET", "/v1/documents/"))


class Settings(ServeSettings):
    model_config = SettingsConfigDict(
        **{**ServeSettings.model_config, "env_prefix": "RAG_CHATBOT_"}
    )

    port: int = 8004
    encoder_dir: Path = Path("models/semantic_search/encoder")
    encoder_variant: str = Field("int8", pattern="^(fp32|int8)$")
    index_uri: str = Field("data/rag_chatbot/index", description="LanceDB folder or Milvus URI.")
    corpus_index: Path | None = Field(
        Path("data/rag_chatbot/index-160"), description="Seeds a missing index (`dvc repro`)."
    )
    uploads_dir: Path = Field(
        Path("data/rag_chatbot/uploads"), description="Uploaded files, kept to rebuild the index."
    )
    manifest: Path | None = Field(None, description="Default: <index_uri>/manifest.json.")
    generator_url: str = Field(
        "http://127.0.0.1:8003/v1", description="OpenAI-compatible base URL."
    )
    generator_api_key: SecretStr | None = None
    generator_model: str = Field("", description="Empty: the first model the endpoint lists.")
    generator_tokenizer: str = Field(
        "models/llm_chat/base", description="tokenizer.json, its folder or a hub id: the budget."
    )
    generator_timeout_s: float = Field(120.0, gt=0)
    chunk_tokens: int = Field(160, ge=16, le=512)
    overlap_tokens: int = Field(24, ge=0)
    k: int = Field(5, ge=1, le=20)
    mode: str = Field("hybrid", pattern="^(dense|bm25|hybrid)$")
    diversify: float | None = Field(0.7, ge=0, le=1)
    min_relevance: float = Field(0.35, ge=-1, le=1)
    context_tokens: int = Field(1024, ge=64)
    answer_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0, le=2)
    rewrite: bool = True
    attribute: bool = True
    max_upload_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_pages: int = Field(500, ge=1)
    onnx_threads: int = Field(0, ge=0)
    max_body_bytes: int = Field(11 * 1024 * 1024, ge=1024)  # an upload plus its form fields

    def rag_config(self) -> RagConfig:
        fields = RagConfig.__dataclass_fields__
        return RagConfig(**{k: v for k, v in self.model_dump().items() if k in fields})


class EncoderModel:
    """The embedding model, as the service's readiness and /v1/models see it. Retrieval runs it
    in the request's thread (no micro-batcher: a query is one short text)."""

    predict_batch = None

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        path = encoder.model_dir / VARIANTS[encoder.variant]
        self.card = ModelCard(encoder.name, encoder.variant, str(path), file_sha256(path),
                              extra={"dim": encoder.dim})  # fmt: skip

    def warmup(self) -> None:
        self.encoder.encode(["warm up the session"])


router = APIRouter(prefix="/v1")


def _rag(request: Request) -> Rag:
    return request.app.state.rag


def _config(rag: Rag, body: RetrievalOptions, **extra: Any) -> RagConfig:
    """The service's defaults with the request's options; an explicit `diversify: null` turns
    MMR off."""
    overrides = {k: getattr(body, k) for k in ("k", "mode", "min_relevance")}
    overrides |= extra
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "diversify" in body.model_fields_set:
        overrides["diversify"] = body.diversify
    return replace(rag.config, **overrides)


def _sources(retrieval) -> list[Source]:
    return retrieval.sources


def _record(event: dict[str, Any]) -> ChatResponse:
    """Metrics for a finished answer, and its response body."""
    retrieval, timings = event["retrieval"], event["timings_ms"]
    metrics.RETRIEVAL_LATENCY.observe(timings["retrieval"] / 1000)
    if "generation" in timings:
        metrics.GENERATION_LATENCY.observe(timings["generation"] / 1000)
    if "first_token" in timings:
        metrics.FIRST_TOKEN_LATENCY.observe(timings["first_token"] / 1000)
    if event["query"] != event.get("question"):
        metrics.REWRITE_LATENCY.observe(timings["rewrite"] / 1000)
    metrics.CHUNKS_USED.observe(len(retrieval.sources))
    if retrieval.top_relevance is not None:
        metrics.TOP_RELEVANCE.observe(retrieval.top_relevance)
    metrics.ANSWERS.labels("no_answer" if event["no_answer"] else "answered").inc()
    for c in event["citations"]:
        metrics.CITATIONS.labels("attributed" if c.attributed else "model").inc()
    citations = [CitationOut(n=c.n, doc_id=c.source.doc_id, title=c.source.title, file=c.source.file,
                             page=c.source.page, section=c.source.section, snippet=c.source.text,
                             attributed=c.attributed) for c in event["citations"]]  # fmt: skip
    return ChatResponse(answer=event["answer"], no_answer=event["no_answer"], query=event["query"],
                        citations=citations, sources=_sources(retrieval),
                        invalid_citations=event["invalid_citations"], timings_ms=timings)  # fmt: skip


def _generator_error(exc: GeneratorError) -> APIError:
    metrics.ANSWERS.labels("error").inc()
    headers = {"Retry-After": "2"} if exc.status == 503 else None
    return APIError(exc.status, exc.code, str(exc), headers=headers)


@router.post("/chat", response_model=ChatResponse, tags=["chat"])
async def chat(body: ChatRequest, request: Request):
    """Answer the last user message from the documents, citing them as [n]. `stream: true`
    answers with server-sent events: `retrieval`, `delta`..., then `answer` (or `error`)."""
    if body.messages[-1].role != "user":
        raise APIError(422, "last_message_not_user", "the last message must have role 'user'",
                       param=f"messages[{len(body.messages) - 1}].role")  # fmt: skip
    if not body.messages[-1].content.strip():
        raise APIError(422, "empty_question", "the question is empty or whitespace",
                       param=f"messages[{len(body.messages) - 1}].content")  # fmt: skip
    rag = _rag(request)
    config = _config(rag, body, temperature=body.temperature, answer_tokens=body.max_tokens)
    messages = [m.model_dump() for m in body.messages]
    events = rag.stream(messages, config, body.filters)
    if not body.stream:
        try:
            async for event in events:
                if event["type"] == "answer":
                    return _record({**event, "question": messages[-1]["content"]})
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
    return StreamingResponse(_sse(head, events, messages[-1]["content"]),
                             media_type="text/event-stream", headers={"Cache-Control": "no-cache"})  # fmt: skip


async def _sse(head: list[dict], events: AsyncIterator[dict], question: str) -> AsyncIterator[str]:
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
                yield frame("answer", _record({**event, "question": question}).model_dump())
    except GeneratorError as exc:
        err = _generator_error(exc)
        yield frame("error", {"error": {"code": err.code, "message": err.message}})
    finally:
        await events.aclose()


@router.post("/retrieve", response_model=RetrieveResponse, tags=["chat"])
async def retrieve(body: RetrieveRequest, request: Request) -> RetrieveResponse:
    """Retrieval alone, as /v1/chat would do it (no rewriting): for debugging relevance."""
    if not body.query.strip():
        raise APIError(422, "empty_query", "query is empty or whitespace", param="query")
    rag = _rag(request)
    config = _config(rag, body)
    result = await run_in_threadpool(rag.retrieve, body.query, config, body.filters)
    metrics.RETRIEVAL_LATENCY.observe(result.timings_ms["retrieval"] / 1000)
    return RetrieveResponse(query=body.query, sources=_sources(result), candidates=result.candidates,
                            top_relevance=result.top_relevance,
                            timings_ms={k: round(v, 2) for k, v in result.timings_ms.items()})  # fmt: skip


DocId = Annotated[str, PathParam(min_length=1, max_length=MAX_DOC_ID_CHARS)]


@router.post("/documents", response_model=UploadResponse, status_code=201, tags=["documents"])
async def upload(
    request: Request,
    file: Annotated[UploadFile, File(description="PDF, Markdown, HTML or plain text.")],
    id: Annotated[str | None, Form(min_length=1, max_length=MAX_DOC_ID_CHARS)] = None,
    title: Annotated[str | None, Form(max_length=500)] = None,
    topic: Annotated[str, Form(max_length=100)] = "",
) -> UploadResponse:
    """Add or replace a document (same id: its chunks are replaced; same bytes: unchanged)."""
    settings: Settings = request.app.state.settings
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise APIError(413, "file_too_large", f"the file is over the limit of "
                       f"{settings.max_upload_bytes} bytes", param="file", limit=settings.max_upload_bytes)  # fmt: skip
    if not data:
        raise APIError(422, "empty_file", "the file is empty", param="file")
    library: Library = request.app.state.library
    async with request.app.state.write_lock:
        try:
            result = await run_in_threadpool(
                library.add_file, file.filename or "upload.txt", data, doc_id=id, title=title,
                topic=topic, media_type=file.content_type, max_pages=settings.max_pages,
            )  # fmt: skip
        except ExtractError as exc:
            raise APIError(exc.status, exc.code, str(exc), param="file",
                           limit=settings.max_pages if exc.code == "too_many_pages" else None) from None  # fmt: skip
    if result.status != "unchanged":
        doc = result.document
        await run_in_threadpool(request.app.state.uploads.save, doc.id, doc.file, data, doc.sha256,
                                title=title, topic=topic, media_type=file.content_type)  # fmt: skip
    metrics.DOCUMENTS.labels(result.status).inc()
    return UploadResponse(document=result.document, status=result.status)


@router.get("/documents", response_model=DocumentList, tags=["documents"])
async def list_documents(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DocumentList:
    """Newest first."""
    docs = await run_in_threadpool(request.app.state.library.documents)
    docs.sort(key=lambda d: d.ingested_at, reverse=True)
    page = docs[offset : offset + limit]
    return DocumentList(total=len(docs), documents=page)


@router.get("/documents/{doc_id:path}", response_model=DocumentInfo, tags=["documents"])
async def get_document(doc_id: DocId, request: Request) -> DocumentInfo:
    info = await run_in_threadpool(request.app.state.library.get, doc_id)
    if info is None:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    return info


@router.delete("/documents/{doc_id:path}", tags=["documents"])
async def delete_document(doc_id: DocId, request: Request) -> dict[str, Any]:
    async with request.app.state.write_lock:
        deleted = await run_in_threadpool(request.app.state.library.delete, doc_id)
        await run_in_threadpool(request.app.state.uploads.remove, doc_id)
    if not deleted:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    metrics.DOCUMENTS.labels("deleted").inc()
    return {"id": doc_id, "deleted": True}


def build_app(settings: Settings) -> FastAPI:
    app = create_app(title="rag-chatbot", settings=settings, demo_dir=STATIC,
                     load_models=lambda: load(app, settings), public_routes=READ_ROUTES)  # fmt: skip
    app.state.write_lock = asyncio.Lock()  # one writer per process
    app.state.uploads = Uploads(settings.uploads_dir)
    app.include_router(router)
    return app


def build_rag(settings: Settings) -> tuple[Rag, Library]:
    """The answering pipeline and the document library over one encoder and index."""
    if not (settings.encoder_dir / "encoder.json").exists():
        raise FileNotFoundError(f"{settings.encoder_dir} has no encoder: run `dvc repro`")
    encoder = Encoder(settings.encoder_dir, variant=settings.encoder_variant,
                      threads=settings.onnx_threads)  # fmt: skip
    local = not settings.index_uri.startswith(("milvus://", "http://", "https://"))
    # A missing index is seeded from the corpus and given back every kept upload, by the one
    # worker whose copy lands (or by each, idempotently, when there is no corpus to copy).
    fresh = local and not Path(settings.index_uri).exists()
    no_corpus = settings.corpus_index is None or not settings.corpus_index.exists()
    restore = fresh and (seed_index(Path(settings.index_uri), settings.corpus_index) or no_corpus)
    store = open_store(settings.index_uri, encoder.dim)
    manifest = settings.manifest or Path(settings.index_uri) / "manifest.json"
    library = Library(store, encoder, manifest, chunk_tokens=settings.chunk_tokens,
                      overlap_tokens=settings.overlap_tokens)  # fmt: skip
    if restore:
        Uploads(settings.uploads_dir).restore(library)
    key = settings.generator_api_key.get_secret_value() if settings.generator_api_key else "none"
    generator = OpenAIGenerator(settings.generator_url, api_key=key, model=settings.generator_model,
                                timeout_s=settings.generator_timeout_s)  # fmt: skip
    rag = Rag(Retriever(encoder, store), generator, load_tokenizer(settings.generator_tokenizer),
              settings.rag_config())  # fmt: skip
    return rag, library


def load(app: FastAPI, settings: Settings) -> list[EncoderModel]:
    t0 = time.perf_counter()
    app.state.rag, app.state.library = build_rag(settings)
    model = EncoderModel(app.state.rag.retriever.encoder)
    model.card.load_seconds = time.perf_counter() - t0
    return [model]


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
