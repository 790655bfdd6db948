"""The document routes: upload, list, describe, delete. Parsing and embedding run in the bounded
CPU pool with no lock held; only the store write and the registry update are serialised (by the
registry's write lock, shared by every worker, and on Postgres by every replica), see
docstore.py."""

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request, UploadFile
from fastapi import Path as PathParam
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema
from starlette.concurrency import run_in_threadpool

from mlstack.fields import ID, NO_NUL, is_blank
from mlstack.serve import APIError, error_responses, offload, requires
from rag_chatbot import metrics
from rag_chatbot.docstore import DocumentExistsError, DocumentStore
from rag_chatbot.document_chunks import MAX_DOC_ID_CHARS, DocumentInfo
from rag_chatbot.extract import ExtractError, detect_format
from rag_chatbot.schemas import DocumentList, UploadResponse
from rag_chatbot.settings import Settings

documents = APIRouter(prefix="/v1", tags=["documents"])

Docs = Annotated[DocumentStore, Depends(requires("documents"))]
DocIdValue = Annotated[str, Field(min_length=1, max_length=MAX_DOC_ID_CHARS, pattern=ID)]
DocId = Annotated[str, PathParam(min_length=1, max_length=MAX_DOC_ID_CHARS, pattern=ID)]


def _settings(request: Request) -> Settings:
    return request.app.state.settings


# The file's part declares its media type (OpenAPI `encoding`), so clients and fuzzers know which
# contents are meant; a name without a known extension is typed by it.
UPLOAD_ENCODING = {
    "requestBody": {
        "content": {
            "multipart/form-data": {
                "encoding": {
                    "file": {"contentType": "application/pdf, text/markdown, text/html, text/plain"}
                }
            }
        }
    }
}


class UploadForm(BaseModel):
    """The upload's form fields; any other field is refused (422), as the schema says."""

    model_config = ConfigDict(extra="forbid")

    # format: binary tells fuzzers the part is raw bytes (its media types are in `encoding`)
    file: UploadFile = Field(
        description="PDF, Markdown, HTML or plain text.", json_schema_extra={"format": "binary"}
    )
    # No `null` in the schema: a form has no null, an absent field is how a client leaves it out.
    id: DocIdValue | SkipJsonSchema[None] = Field(None, description="Default: the file name.")
    title: str | SkipJsonSchema[None] = Field(None, max_length=500, pattern=NO_NUL)
    topic: str = Field("", max_length=100, pattern=NO_NUL)
    replace: bool = Field(False, description="Replace a document with this id; else 409.")


@documents.post(
    "/documents",
    response_model=UploadResponse,
    status_code=201,
    responses=error_responses(409, 413, 415, 422),
    openapi_extra=UPLOAD_ENCODING,
)
async def upload(
    request: Request,
    docs: Docs,
    settings: Annotated[Settings, Depends(_settings)],
    form: Annotated[UploadForm, Form(media_type="multipart/form-data")],
) -> UploadResponse:
    """Add a document. Its id (`id`, else the file name) must be new unless `replace` is true: a
    taken id is a 409, never a silent replacement. The same bytes again are `unchanged`."""
    parts = await request.form()  # parsed once: FastAPI read it for the form model
    for field in parts:  # the form model keeps only the last part of a name
        if len(parts.getlist(field)) > 1:
            raise APIError(
                422, "ambiguous_input", f"send one '{field}' part per upload", param=field, limit=1
            )
    file, id, title, topic, replace = form.file, form.id, form.title, form.topic, form.replace
    name = file.filename or "upload.txt"
    doc_id = id if id is not None else name
    if is_blank(doc_id) or len(doc_id) > MAX_DOC_ID_CHARS or "\x00" in doc_id:
        raise APIError(
            422,
            "bad_id",
            f"the document id (the file name when `id` is not given) "
            f"must be 1 to {MAX_DOC_ID_CHARS} characters, not blank, without NUL",
            param="id",
            limit=MAX_DOC_ID_CHARS,
        )
    data = await file.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise APIError(
            413,
            "file_too_large",
            f"the file is over the limit of {settings.max_upload_bytes} bytes",
            param="file",
            limit=settings.max_upload_bytes,
        )
    if not data:
        raise APIError(422, "empty_file", "the file is empty", param="file")
    try:
        detect_format(name, file.content_type)  # refuse the wrong type before any work
        existing = await run_in_threadpool(docs.get, doc_id)
        if (
            existing is not None
            and not replace
            and existing.sha256 != hashlib.sha256(data).hexdigest()
        ):
            raise DocumentExistsError(existing)  # early: no parsing for an upload that will fail
        new = await offload(
            docs.prepare,
            name,
            data,
            doc_id=doc_id,
            title=title,
            topic=topic,
            media_type=file.content_type,
        )
        async with docs.write_lock:  # waiters wait here, not in a pool thread
            info, status = await run_in_threadpool(
                docs.put, new, data, title=title, media_type=file.content_type, replace=replace
            )
    except ExtractError as exc:
        lim = docs.limits
        limits = {
            "too_many_pages": lim.max_pages,
            "too_many_chunks": lim.max_chunks,
            "document_too_long": lim.max_chars,
            "parse_timeout": lim.parse_timeout_s,
            "parse_memory": lim.parse_memory_mb,
        }
        raise APIError(
            exc.status, exc.code, str(exc), param="file", limit=limits.get(exc.code)
        ) from None
    except DocumentExistsError:
        raise APIError(
            409,
            "document_exists",
            f"a document with id {doc_id!r} exists; send replace=true to replace it, or another id",
            param="id",
        ) from None
    metrics.DOCUMENTS.labels(status).inc()
    return UploadResponse(document=info, status=status)


@documents.get("/documents", response_model=DocumentList)
async def list_documents(
    docs: Docs,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> DocumentList:
    """Newest first."""
    total, page = await run_in_threadpool(docs.page, limit, offset)
    return DocumentList(total=total, documents=page)


@documents.get(
    "/documents/{doc_id:path}", response_model=DocumentInfo, responses=error_responses(404)
)
async def get_document(doc_id: DocId, docs: Docs) -> DocumentInfo:
    info = await run_in_threadpool(docs.get, doc_id)
    if info is None:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    return info


@documents.delete("/documents/{doc_id:path}", responses=error_responses(404))
async def delete_document(doc_id: DocId, docs: Docs) -> dict[str, Any]:
    async with docs.write_lock:  # waiters wait here, not in a pool thread
        deleted = await run_in_threadpool(docs.delete, doc_id)
    if not deleted:
        raise APIError(404, "document_not_found", f"no document with id {doc_id!r}", param="id")
    metrics.DOCUMENTS.labels("deleted").inc()
    return {"id": doc_id, "deleted": True}
