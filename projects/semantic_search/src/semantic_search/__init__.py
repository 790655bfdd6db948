"""Hybrid semantic search: a quantized ONNX sentence encoder, a `VectorStore` with two backends
(LanceDB embedded, Milvus for clusters), dense/BM25/hybrid retrieval with filters, MMR and
reranking, as a Python library (the RAG chatbot imports it) and an HTTP service."""

from semantic_search.documents import Document, Filters, Hit
from semantic_search.encoder import Encoder
from semantic_search.retrieval import Retriever, SearchMode

__all__ = ["Document", "Encoder", "Filters", "Hit", "Retriever", "SearchMode"]
