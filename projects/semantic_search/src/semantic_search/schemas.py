"""Request and response bodies of the HTTP API."""

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StringConstraints,
    Tag,
    field_validator,
)

from semantic_search.documents import NOT_BLANK, Document, Filters, Scalar, one_or_many
from semantic_search.retrieval import SearchMode

MAX_QUERY_CHARS = 4000
MAX_K = 100
MAX_DOCUMENTS = 256  # per upsert request
MAX_INPUTS = 256  # texts per embeddings request
MAX_INPUT_CHARS = 20_000  # per embeddings text: the token limits are checked after this
MAX_MODEL_CHARS = 256


def _integral(value: Any) -> Any:
    # JSON Schema counts 1.0 as an integer; a strict pydantic int would not.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# Strict: JSON `true` is not 1 nor "1" a number, as the schema says.
StrictBool = Annotated[bool, Field(strict=True)]


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS, pattern=NOT_BLANK)
    k: Annotated[int, Field(ge=1, le=MAX_K, strict=True), BeforeValidator(_integral)] = 10
    mode: SearchMode = SearchMode.hybrid
    filters: Filters | None = None
    diversify: float | None = Field(None, ge=0, le=1, strict=True,
                                    description="MMR lambda: 1 = relevance only, lower = more diverse.")  # fmt: skip
    rerank: StrictBool = Field(
        False, description="Needs a reranker (SEMANTIC_SEARCH_RERANKER_DIR)."
    )
    truncate: StrictBool = Field(
        True,
        description="Embed the start of a query over the encoder's token window (BM25 still "
        "reads all of it; `truncated` says so); false: answer 400 instead.",
    )


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

    documents: list[Document] = Field(min_length=1, max_length=MAX_DOCUMENTS)


class UpsertResponse(BaseModel):
    upserted: int
    ids: list[str]
    truncated_for_embedding: list[str] = Field(
        description="Documents longer than the encoder's window: embedded from their start, "
        "BM25-indexed in full."
    )


InputText = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_INPUT_CHARS, pattern=NOT_BLANK)
]


class EmbeddingsRequest(BaseModel):
    """OpenAI's `POST /v1/embeddings` body; token-id arrays are refused (send text)."""

    model_config = ConfigDict(extra="forbid")

    input: Annotated[
        Annotated[InputText, Tag("str")]
        | Annotated[list[InputText], Field(min_length=1, max_length=MAX_INPUTS), Tag("list")],
        Discriminator(one_or_many),
    ]
    model: str | None = Field(None, max_length=MAX_MODEL_CHARS)
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: Annotated[int | None, Field(ge=1, strict=True), BeforeValidator(_integral)] = Field(
        None, description="Must equal the model's dimension when given."
    )
    user: str | None = Field(None, max_length=MAX_MODEL_CHARS)
    truncate: StrictBool = Field(
        False, description="Embed the start of a text over the token window instead of a 400."
    )

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: Any) -> Any:
        if isinstance(value, list) and value and not isinstance(value[0], str):
            raise ValueError("token-id arrays are not supported: send text")
        return value


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
