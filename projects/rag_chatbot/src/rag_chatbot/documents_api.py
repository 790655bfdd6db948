"""The document routes: upload (add or replace), list, describe, delete. Writes hold the app's
write lock; every upload is kept in `Uploads` so the index can be rebuilt (uploads.py)."""

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from mlstack.serve import APIError
from rag_chatbot import metrics
from rag_chatbot.extract import ExtractError
from rag_chatbot.library import MAX_DOC_ID_CHARS, DocumentInfo, Library
from rag_chatbot.schemas import DocumentList, UploadResponse
from rag_chatbot.settings import Settings

documents = APIRouter(prefix="/v1", tags=["documents"])

DocId = Annotated[str, PathParam(min_length=1, max_length=MAX_DOC_ID_CHARS)]


@documents.post("/documents", response_model=UploadResponse, status_code=201, tags=["documents"])
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
        if result.status != "unchanged":  # under the lock: the registry is read-modify-write
            doc = result.document
            await run_in_threadpool(request.app.state.uploads.save, doc.id, doc.file, data,
                                    doc.sha256, title=title, topic=topic, media_type=file.content_type)  # fmt: skip
    metrics.DOCUMENTS.labels(result.status).inc()
    return UploadResponse(document=result.document, status=result.status)


@documents.get("/documents", response_model=DocumentList, tags=["documents"])
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


@documents.get("/documents/{doc_id:path}", response_model=DocumentInfo, tags=["documents"])
async def get_document(doc_id: DocId, request: Request) -> DocumentInfo:
    info = await run_in_threadpool(request.app.state.library.get, doc_id)
    if info is None:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    return info


@documents.delete("/documents/{doc_id:path}", tags=["documents"])
async def delete_document(doc_id: DocId, request: Request) -> dict[str, Any]:
    async with request.app.state.write_lock:
        deleted = await run_in_threadpool(request.app.state.library.delete, doc_id)
        await run_in_threadpool(request.app.state.uploads.remove, doc_id)
    if not deleted:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    metrics.DOCUMENTS.labels("deleted").inc()
    return {"id": doc_id, "deleted": True}
