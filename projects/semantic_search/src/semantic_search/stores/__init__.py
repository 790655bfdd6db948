"""`VectorStore` and its backends: LanceDB (embedded default) and Milvus (Lite file or a
cluster)."""

from semantic_search.stores.base import VectorStore, open_store

__all__ = ["VectorStore", "open_store"]
