"""The contract every backend meets (tests/test_stores.py runs it against each one)."""

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from semantic_search.documents import Document, Filters, Hit

FILTER_FIELDS = ("topic", "source", "date")


@runtime_checkable
class VectorStore(Protocol):
    """Documents with one embedding each, searchable by vector and by BM25 over `text`.

    Scores: `dense` returns cosine similarity (higher is closer), `text` returns BM25.
    Writes are atomic per call: after `upsert` returns, every document in it is durable.
    """

    dim: int
    backend: str

    def upsert(self, documents: Sequence[Document], vectors: np.ndarray) -> int: ...

    def delete(self, ids: Sequence[str]) -> int: ...

    def get(self, ids: Sequence[str]) -> list[Document]: ...

    def count(self) -> int: ...

    def dense(
        self,
        vector: np.ndarray,
        k: int,
        filters: Filters | None = None,
        *,
        with_vectors: bool = False,
    ) -> list[Hit]: ...

    def text(
        self, query: str, k: int, filters: Filters | None = None, *, with_vectors: bool = False
    ) -> list[Hit]: ...

    def topics(self) -> dict[str, int]: ...

    def optimize(self) -> None:
        """Bring indexes up to date with recent writes (a no-op where the backend does it)."""


def is_milvus_uri(uri: str) -> bool:
    """`milvus://host:port`, `http(s)://...` or a `*.db` (Milvus Lite) file; else LanceDB."""
    return uri.startswith(("milvus://", "http://", "https://")) or uri.endswith(".db")


def open_store(uri: str, dim: int, *, collection: str = "documents", **options) -> VectorStore:
    """`milvus://host:port`, `http(s)://...` or a `*.db` file -> Milvus; a folder -> LanceDB."""
    if is_milvus_uri(uri):
        from semantic_search.stores.milvus import MilvusStore

        return MilvusStore(uri.replace("milvus://", "http://", 1), dim, collection=collection)
    from semantic_search.stores.lance import LanceStore

    return LanceStore(uri, dim, table=collection, **options)
