"""The RAG chatbot service: chat with citations (plain or server-sent events), documents in and
out, retrieval for debugging. Generation goes to an OpenAI-compatible endpoint (the LLM chat
service by default).

Here: the app and what it loads (the documents, the answering pipeline, the served model's
card). The routes are in chat_api.py and documents_api.py, the settings in settings.py.

Run: `rag-chatbot serve` (settings from `RAG_CHATBOT_*` variables or `.env`).
"""

import logging
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI

from mlstack.serve import create_app, file_sha256
from mlstack.serving_card import apply_card
from rag_chatbot.answer import Rag
from rag_chatbot.chat_api import router as chat_router
from rag_chatbot.chunking import load_tokenizer
from rag_chatbot.docstore import DocumentStore, Limits
from rag_chatbot.docstore_setup import open_registry, seed_index
from rag_chatbot.documents_api import documents
from rag_chatbot.generator import OpenAIGenerator
from rag_chatbot.library import Library
from rag_chatbot.registry import Registry
from rag_chatbot.retrieval_model import RetrievalModel
from rag_chatbot.settings import Settings
from rag_chatbot.sqldb import is_postgres_url
from semantic_search.encoder import VARIANTS, Encoder
from semantic_search.retrieval import Retriever
from semantic_search.stores import open_store
from semantic_search.stores.base import is_milvus_uri
from semantic_search.stores.seed import stamp_encoder

STATIC = Path(__file__).parent / "static"
log = logging.getLogger(__name__)


def build_app(settings: Settings) -> FastAPI:
    app = create_app(
        title="rag-chatbot",
        settings=settings,
        demo_dir=STATIC,
        load_models=lambda: load(app, settings),
    )
    app.include_router(chat_router)
    app.include_router(documents)
    return app


def registry_location(settings: Settings) -> str | Path:
    """A postgresql:// URL, or the sqlite file's path."""
    if settings.registry is None:
        return settings.uploads_dir / "registry.sqlite"
    value = settings.registry.get_secret_value()
    return value if is_postgres_url(value) else Path(value)


def warn_if_not_shared(registry: Registry, index_uri: str) -> None:
    """A Milvus index is how replicas on several hosts share one store; a sqlite registry cannot
    be shared by them. One replica (any number of workers) is fine, so this warns, not fails:
    the service cannot know how many replicas run."""
    if is_milvus_uri(index_uri) and not registry.db.shared_across_hosts:
        log.warning(
            "the index is Milvus but the document registry is a local sqlite file (%s): "
            "right for one replica only. Replicas on several hosts need "
            "RAG_CHATBOT_REGISTRY=postgresql://... (see the README).",
            registry,
        )


REINDEX = (
    "stop the service and move that index away: it is seeded again from the corpus index "
    "and every kept upload is indexed again with this encoder"
)


def open_documents(settings: Settings) -> tuple[Encoder, DocumentStore]:
    """The encoder and the documents (index + registry + kept files); finishes any write a
    killed process left half-done, so the service reports ready with nothing half-written."""
    if not (settings.encoder_dir / "encoder.json").exists():
        raise FileNotFoundError(f"{settings.encoder_dir} has no encoder: run `dvc repro`")
    encoder = Encoder(
        settings.encoder_dir, variant=settings.encoder_variant, threads=settings.onnx_threads
    )
    local = not is_milvus_uri(settings.index_uri)
    # A missing index is seeded from the corpus and given back every kept upload, by the one
    # worker whose copy lands (or by each, idempotently, when there is no corpus to copy).
    fresh = local and not Path(settings.index_uri).exists()
    no_corpus = settings.corpus_index is None or not settings.corpus_index.exists()
    seeded = fresh and (seed_index(Path(settings.index_uri), settings.corpus_index) or no_corpus)
    registry = Registry(registry_location(settings))
    log.info("document registry: %s", registry)  # never the password: str() leaves it out
    warn_if_not_shared(registry, settings.index_uri)
    lance_options = {"bm25_fields": settings.bm25_fields} if local else {}
    store = open_store(settings.index_uri, encoder.dim, **lance_options)
    if local:  # an index of another encoder's vectors would rank nonsense: refuse to start
        sha256 = file_sha256(settings.encoder_dir / VARIANTS[encoder.variant])
        stamp_encoder(Path(settings.index_uri), encoder, sha256, REINDEX)
    open_registry(
        registry, Path(settings.index_uri) if local else None, settings.uploads_dir, seeded=seeded
    )
    library = Library(
        store,
        encoder,
        None,
        chunk_tokens=settings.chunk_tokens,
        overlap_tokens=settings.overlap_tokens,
    )
    limits = Limits(
        max_pages=settings.max_pages,
        max_chunks=settings.max_document_chunks,
        max_chars=settings.max_document_chars,
        parse_timeout_s=settings.parse_timeout_s,
        parse_memory_mb=settings.parse_memory_mb,
    )
    docs = DocumentStore(library, registry, settings.uploads_dir, limits)
    docs.reconcile()
    return encoder, docs


def build_rag(settings: Settings) -> tuple[Rag, DocumentStore]:
    """The answering pipeline and the documents over one encoder and index."""
    encoder, docs = open_documents(settings)
    key = settings.generator_api_key.get_secret_value() if settings.generator_api_key else "none"
    generator = OpenAIGenerator(
        settings.generator_url,
        api_key=key,
        model=settings.generator_model,
        timeout_s=settings.generator_timeout_s,
    )
    fusion = {
        k: getattr(settings, k) for k in ("rrf_k", "dense_weight", "bm25_weight", "candidates")
    }
    reranker = None
    if settings.reranker_dir is not None:
        from semantic_search.rerank import CrossEncoderReranker

        reranker = CrossEncoderReranker(settings.reranker_dir, threads=settings.onnx_threads)
    rag = Rag(
        Retriever(encoder, docs.store, reranker=reranker, **fusion),
        generator,
        load_tokenizer(settings.generator_tokenizer),
        settings.rag_config(),
    )
    return rag, docs


def serving_settings(settings: Settings) -> tuple[Settings, dict[str, Any]]:
    """The settings with the serving card's configuration (explicit settings win). Containers
    mount the corpus index at a path of their own: that override is expected, not warned."""
    return apply_card(settings, settings.serving_card, quiet=("corpus_index",))


def load(app: FastAPI, settings: Settings) -> list[RetrievalModel]:
    t0 = time.perf_counter()
    settings, serving = serving_settings(settings)
    app.state.settings = settings  # what the routes read is what runs
    rag, docs = build_rag(settings)
    app.state.resources.update(rag=rag, documents=docs)
    model = RetrievalModel(rag, serving)
    model.card.load_seconds = time.perf_counter() - t0
    return [model]


def app_factory() -> FastAPI:
    """Zero-argument factory for uvicorn (`--factory`): settings from the environment."""
    return build_app(Settings())
