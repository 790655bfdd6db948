"""The service's settings, from `SEMANTIC_SEARCH_*` variables or `.env`."""

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlstack.serve import ServeSettings
from semantic_search.documents import MAX_TEXT_CHARS
from semantic_search.schemas import MAX_DOCUMENTS, MAX_INPUTS


class Settings(ServeSettings):
    model_config = SettingsConfigDict(
        **{**ServeSettings.model_config, "env_prefix": "SEMANTIC_SEARCH_"}
    )

    port: int = 8002
    # The champion, as ss_register installed it: a version the gate refused is never served.
    encoder_dir: Path = Path("models/semantic_search/champion/encoder")
    encoder_variant: str = Field(
        "int8",
        pattern="^(fp32|int8)$",
        description="fp32 reads model.onnx, which the champion folder does not hold (it is "
        "registered and served INT8): set encoder_dir to models/semantic_search/encoder.",
    )
    index_uri: str = Field(
        "data/semantic_search/service-index",
        description="LanceDB folder or Milvus URI the service reads and writes. Not the "
        "pipeline's index: `dvc repro` rebuilds that one, and must neither lose uploads nor "
        "evaluate on them.",
    )
    corpus_index: Path | None = Field(
        Path("models/semantic_search/champion/index"),
        description="The champion's corpus index: copied to a local index_uri when that is absent.",
    )
    reranker_dir: Path | None = Field(
        None,
        description="A cross-encoder exported to ONNX: model.onnx, tokenizer.json, encoder.json.",
    )
    serving_card: Path | None = Field(
        Path("models/semantic_search/champion/serving.json"),
        description="What `ss_evaluate` evaluated (retrieval weights, encoder variant): used for "
        "every setting not set explicitly. Missing: these defaults, with a warning.",
    )
    # Reciprocal rank fusion of the hybrid mode; the card holds params.yaml's values.
    rrf_k: int = Field(60, ge=1)
    dense_weight: float = Field(1.0, ge=0)
    bm25_weight: float = Field(1.0, ge=0)
    candidates: int = Field(50, ge=1, description="Hits each ranking gives hybrid, MMR, rerank.")
    onnx_threads: int = Field(0, ge=0)
    # Each at most the schema's limit, which is what the OpenAPI document states.
    max_documents: int = Field(
        MAX_DOCUMENTS, ge=1, le=MAX_DOCUMENTS, description="Documents per upsert request."
    )
    max_document_chars: int = Field(MAX_TEXT_CHARS, ge=1, le=MAX_TEXT_CHARS)
    max_inputs: int = Field(
        MAX_INPUTS, ge=1, le=MAX_INPUTS, description="Texts per embeddings request."
    )
    max_request_tokens: int = Field(
        16_384, ge=1, description="Tokens one embeddings request may encode, all inputs together."
    )
