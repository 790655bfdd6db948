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
from pydantic_core import PydanticCustomError

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
    diversify: float | None = Field(
        None,
        ge=0,
        le=1,
        strict=True,
        description="MMR lambda: 1 = relevance only, lower = more diverse.",
    )
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


# The error type of token-id input: the service answers it with a 400 that says how to send text
# (routes.install_validation_handler), not the generic 422 of a schema mismatch.
TOKEN_IDS = "token_ids_unsupported"
TOKEN_IDS_HINT = (
    "token-id arrays are not supported: this encoder has its own WordPiece vocabulary, so ids "
    "from another tokenizer (tiktoken) would embed the wrong words; send the text instead. "
    "LangChain: OpenAIEmbeddings(..., check_embedding_ctx_length=False)"
)


def _is_token_ids(value: Any) -> bool:
    """OpenAI's list[int] or list[list[int]] input. Only the first item is looked at: the
    refusal must cost nothing however long the list (any other mix is invalid anyway)."""
    if not isinstance(value, list) or not value:
        return False
    first = value[0]
    return isinstance(first, list) or (isinstance(first, int) and not isinstance(first, bool))


class EmbeddingsRequest(BaseModel):
    """OpenAI's `POST /v1/embeddings` body; token-id arrays are refused (send text)."""

    model_config = ConfigDict(extra="forbid")

    input: Annotated[
        Annotated[InputText, Tag("str")]
        | Annotated[list[InputText], Field(min_length=1, max_length=MAX_INPUTS), Tag("list")],
        Discriminator(one_or_many),
    ] = Field(
        description="A text or a list of texts. Token-id arrays (list[int] or list[list[int]], "
        "what LangChain's OpenAIEmbeddings sends by default) are a 400: the encoder has its "
        "own vocabulary; pass `check_embedding_ctx_length=False` to send text."
    )
    model: str | None = Field(None, max_length=MAX_MODEL_CHARS)
    encoding_format: Literal["float", "base64"] = Field(
        "float",
        description="base64: the little-endian float32 bytes, what the openai SDK asks for and "
        "decodes by default.",
    )
    dimensions: Annotated[int | None, Field(ge=1, strict=True), BeforeValidator(_integral)] = Field(
        None,
        description="Only the model's own dimension (see /v1/stats), anything else is a 400: "
        "truncating and renormalising (Matryoshka) only keeps quality for models trained for "
        "it, and this MiniLM encoder is not.",
    )
    truncate: StrictBool = Field(
        False, description="Embed the start of a text over the token window instead of a 400."
    )

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: Any) -> Any:
        if _is_token_ids(value):
            raise PydanticCustomError(TOKEN_IDS, TOKEN_IDS_HINT)
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
