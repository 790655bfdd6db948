"""The semantic search service: search, documents, OpenAI-compatible embeddings, stats
(routes in routes.py).

Run: `semantic-search serve` (settings from `SEMANTIC_SEARCH_*` variables or `.env`).
"""

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from mlstack.serve import ModelCard, ServeSettings, create_app, file_sha256
from mlstack.serving_card import apply_card, warn_if_changed
from semantic_search.documents import MAX_TEXT_CHARS
from semantic_search.encoder import VARIANTS, Encoder, EncoderConfig, Tokenized
from semantic_search.retrieval import Retriever
from semantic_search.routes import install_validation_handler, router
from semantic_search.schemas import MAX_DOCUMENTS, MAX_INPUTS
from semantic_search.stores import open_store
from semantic_search.stores.base import is_milvus_uri
from semantic_search.stores.seed import seed_index, stamp_encoder

STATIC = Path(__file__).parent / "static"


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


def encoder_card(encoder: Encoder, serving: dict[str, Any] | None, **extra: Any) -> ModelCard:
    """The card of a service that embeds with `encoder` (search's, the RAG chatbot's): the ONNX
    file it runs and its hash, checked against the serving card's (a warning if they differ)."""
    path = encoder.model_dir / VARIANTS[encoder.variant]
    sha256 = file_sha256(path)
    serving = serving or {"card": None}
    warn_if_changed(serving, "encoder_sha256", sha256)
    extra = {"dim": encoder.dim, **extra, "serving": serving}
    return ModelCard(encoder.name, encoder.variant, str(path), sha256, extra=extra)


class EncoderModel:
    """The encoder as a micro-batched model: items are token id lists, already limit-checked."""

    def __init__(self, encoder: Encoder, serving: dict[str, Any] | None = None) -> None:
        self.encoder = encoder
        self.card = encoder_card(encoder, serving, max_tokens=encoder.max_tokens)

    def predict_batch(self, items: list[list[int]]) -> list[np.ndarray]:
        counts = np.array([len(i) for i in items])
        return list(self.encoder.encode_tokenized(Tokenized(items, counts, counts * 0 > 0)))

    def warmup(self) -> None:
        self.encoder.encode(["warm up the session"])


def build_app(settings: Settings) -> FastAPI:
    app = create_app(
        title="semantic-search",
        settings=settings,
        demo_dir=STATIC,
        load_models=lambda: load(app, settings),
    )
    # One writer per process (a table's commits conflict less); LanceDB orders the processes.
    app.state.resources["write_lock"] = asyncio.Lock()
    app.include_router(router)
    install_validation_handler(app)
    describe_deployment(app, settings)
    return app


def describe_deployment(app: FastAPI, settings: Settings) -> None:
    """The OpenAPI document states what this deployment takes: `rerank: true` only with a
    reranker, and `dimensions` only the encoder's (read from its encoder.json, no model load)."""
    config = settings.encoder_dir / "encoder.json"
    dim = EncoderConfig.load(settings.encoder_dir).dim if config.exists() else None
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schemas = generate()["components"]["schemas"]
        if settings.reranker_dir is None:
            schemas["SearchRequest"]["properties"]["rerank"]["enum"] = [False]
        if dim is not None:
            dims = schemas["EmbeddingsRequest"]["properties"]["dimensions"]
            dims["anyOf"] = [{"type": "integer", "enum": [dim]}, {"type": "null"}]
        return app.openapi_schema

    app.openapi = openapi


def load(app: FastAPI, settings: Settings) -> list[EncoderModel]:
    settings, serving = apply_card(settings, settings.serving_card)
    app.state.settings = settings  # what the routes read is what runs
    if not (settings.encoder_dir / "encoder.json").exists():
        raise FileNotFoundError(f"{settings.encoder_dir} has no encoder: run `dvc repro`")
    encoder = Encoder(
        settings.encoder_dir,
        variant=settings.encoder_variant,
        threads=settings.onnx_threads,
        batch_size=settings.max_batch_size,
    )
    reranker = None
    if settings.reranker_dir:
        from semantic_search.rerank import CrossEncoderReranker

        reranker = CrossEncoderReranker(settings.reranker_dir, threads=settings.onnx_threads)
    model = EncoderModel(encoder, serving)
    local = not is_milvus_uri(settings.index_uri)
    if local:
        seed_index(Path(settings.index_uri), settings.corpus_index)
    store = open_store(settings.index_uri, encoder.dim)  # creates a new local folder
    if local:
        stamp_encoder(Path(settings.index_uri), encoder, model.card.sha256)
    app.state.resources["retriever"] = Retriever(
        encoder,
        store,
        reranker=reranker,
        rrf_k=settings.rrf_k,
        dense_weight=settings.dense_weight,
        bm25_weight=settings.bm25_weight,
        candidates=settings.candidates,
    )
    return [model]


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
