"""Request and response bodies of the RAG API. Every limit is a validation error (422) that names
the field and the limit."""

import datetime as dt
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    conlist,
    field_validator,
)

from mlstack.fields import iso_date, json_int
from rag_chatbot.answer import Source
from rag_chatbot.document_chunks import DocumentInfo
from semantic_search.documents import MAX_ID_CHARS, Filters

MAX_MESSAGE_CHARS = 4000
MAX_FILTER_VALUES = 64
# Text sent on to the generator: not blank and no NUL (the LLM chat service refuses NUL), in a
# form that is linear in a backtracking engine (the three parts cannot overlap).
TEXT = r"^[\s\x1c-\x1f\x85\ufeff]*[^\s\x00\x1c-\x1f\x85\ufeff][^\x00]*$"


FilterValue = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_CHARS)]
FilterValues = conlist(FilterValue, max_length=MAX_FILTER_VALUES)


class RagFilters(BaseModel):
    """The search's `Filters` as the schema states them: each value bounded (a document id is at
    most the index's id length), one value or a list, dates as YYYY-MM-DD strings only (pydantic
    would take 0 as 1970-01-01). Not a subclass: pydantic merges the parent's list limit into
    this union's schema, where it limits the single string."""

    model_config = ConfigDict(extra="forbid")

    topic: FilterValue | FilterValues | None = None
    source: FilterValue | FilterValues | None = None
    date_from: dt.date | None = Field(default=None, description="YYYY-MM-DD")
    date_to: dt.date | None = Field(default=None, description="YYYY-MM-DD")

    _iso_dates_only = field_validator("date_from", "date_to", mode="before")(iso_date)

    def to_filters(self) -> Filters:
        return Filters(**self.model_dump())


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, pattern=TEXT)


class RetrievalOptions(BaseModel):
    """Unset fields take the service's defaults (`RAG_CHATBOT_*` settings)."""

    model_config = ConfigDict(extra="forbid")

    # strict: JSON `true` is not 1 and `false` not 0.0, as the schema says
    k: json_int(ge=1, le=20) | None = Field(None, description="Sources at most.")
    mode: Literal["dense", "bm25", "hybrid"] | None = None
    diversify: float | None = Field(
        None, ge=0, le=1, strict=True, description="MMR lambda; 1 = relevance only."
    )
    min_relevance: float | None = Field(
        None, ge=-1, le=1, strict=True, description="Cosine floor for a source."
    )
    filters: RagFilters | None = None


# JSON Schema's way to say "at least one user message" (the question).
HAS_USER_MESSAGE = {
    "contains": {"type": "object", "required": ["role"], "properties": {"role": {"const": "user"}}}
}


class ChatRequest(RetrievalOptions):
    messages: list[Message] = Field(
        min_length=1,
        max_length=32,
        json_schema_extra=HAS_USER_MESSAGE,
        description="The conversation; the last user message is the question (messages after "
        "it, e.g. an answer being regenerated, are ignored).",
    )
    stream: bool = Field(False, strict=True)
    temperature: float | None = Field(None, ge=0, le=2, strict=True)
    max_tokens: json_int(ge=1, le=2048) | None = None

    @field_validator("messages")
    @classmethod
    def _has_a_question(cls, messages: list[Message]) -> list[Message]:
        if not any(m.role == "user" for m in messages):
            raise ValueError("the conversation needs a user message (the question)")
        return messages

    def conversation(self) -> list[dict[str, str]]:
        """The messages up to and including the last user message."""
        last = max(i for i, m in enumerate(self.messages) if m.role == "user")
        return [m.model_dump() for m in self.messages[: last + 1]]


class RetrieveRequest(RetrievalOptions):
    query: str = Field(min_length=1, max_length=MAX_MESSAGE_CHARS, pattern=TEXT)


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
    searched: str = Field(description="What was searched: the query, or its HyDE expansion.")
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
