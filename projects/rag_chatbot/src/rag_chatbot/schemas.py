"""Request and response bodies of the RAG API. Every limit is a validation error (422) that names
the field and the limit."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from rag_chatbot.answer import Source
from rag_chatbot.library import DocumentInfo
from semantic_search.documents import Filters

MAX_MESSAGE_CHARS = 4000


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class RetrievalOptions(BaseModel):
    """Unset fields take the service's defaults (`RAG_CHATBOT_*` settings)."""

    model_config = ConfigDict(extra="forbid")

    k: int | None = Field(None, ge=1, le=20, description="Sources at most.")
    mode: Literal["dense", "bm25", "hybrid"] | None = None
    diversify: float | None = Field(None, ge=0, le=1, description="MMR lambda; 1 = relevance only.")
    min_relevance: float | None = Field(None, ge=-1, le=1, description="Cosine floor for a source.")
    filters: Filters | None = None


class ChatRequest(RetrievalOptions):
    messages: list[Message] = Field(min_length=1, max_length=32)
    stream: bool = False
    temperature: float | None = Field(None, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=2048)


class RetrieveRequest(RetrievalOptions):
    query: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS)


class CitationOut(BaseModel):
    n: int
    doc_id: str
    title: str
    file: str
    page: int | None
    section: str
    snippet: str
    attributed: bool = Field(description="Added by support matching, not written by the model.")


class ChatResponse(BaseModel):
    answer: str
    no_answer: bool
    query: str = Field(description="The standalone query retrieval used (after rewriting).")
    citations: list[CitationOut]
    sources: list[Source]
    invalid_citations: int
    timings_ms: dict[str, float]


class RetrieveResponse(BaseModel):
    query: str
    sources: list[Source]
    candidates: int
    top_relevance: float | None
    timings_ms: dict[str, float]


class UploadResponse(BaseModel):
    document: DocumentInfo
    status: Literal["created", "replaced", "unchanged"]


class DocumentList(BaseModel):
    total: int
    documents: list[DocumentInfo]
