"""Request and response bodies of the HTTP API."""

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from semantic_search.documents import Document, Filters, Scalar
from semantic_search.retrieval import SearchMode

MAX_QUERY_CHARS = 4000


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(max_length=MAX_QUERY_CHARS)
    k: int = Field(10, ge=1, le=100)
    mode: SearchMode = SearchMode.hybrid
    filters: Filters | None = None
    diversify: float | None = Field(
        None, ge=0, le=1, description="MMR lambda: 1 = relevance only, lower = more diverse."
    )
    rerank: bool = False
    truncate: bool = Field(False, description="Cut a query over the token limit instead of a 400.")


class SearchHit(BaseModel):
    id: str
    score: float
    title: str
    topic: str
    source: str
    date: dt.date | None
    snippet: str
    highlights: list[tuple[int, int]] = Field(
        description="[start, end) of matched terms in snippet"
    )
    metadata: dict[str, Scalar]


class SearchResponse(BaseModel):
    query: str
    mode: SearchMode
    results: list[SearchHit]
    query_tokens: int
    truncated: bool
    timings_ms: dict[str, float]


class UpsertRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    documents: list[Document] = Field(min_length=1)


class UpsertResponse(BaseModel):
    upserted: int
    ids: list[str]
    truncated_for_embedding: list[str] = Field(
        description="Documents longer than the encoder's window: embedded from their start, "
        "BM25-indexed in full."
    )


class EmbeddingsRequest(BaseModel):
    """OpenAI's `POST /v1/embeddings` body (token-array input is not supported)."""

    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    truncate: bool = False


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class Usage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingsResponse(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class Stats(BaseModel):
    documents: int
    topics: dict[str, int]
    backend: str
    encoder: str
    dim: int
    max_query_tokens: int
