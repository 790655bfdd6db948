"""The semantic search service: search, documents, OpenAI-compatible embeddings, stats
(routes in routes.py).

Run: `semantic-search serve` (settings from `SEMANTIC_SEARCH_*` variables or `.env`, see
settings.py).
"""

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI

from mlstack.serve import ModelCard, create_app, file_sha256
from mlstack.serving_card import apply_card, warn_if_changed
from semantic_search.encoder import VARIANTS, Encoder, EncoderConfig, Tokenized
from semantic_search.retrieval import Retriever
from semantic_search.routes import install_validation_handler, router
from semantic_search.settings import Settings
from semantic_search.stores import open_store
from semantic_search.stores.base import is_milvus_uri
from semantic_search.stores.seed import seed_index, stamp_encoder

STATIC = Path(__file__).parent / "static"


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
