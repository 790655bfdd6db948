"""Embed documents and write them to a store in batches. Each batch is one atomic write, so an
interrupted run leaves the index readable with every batch it reported as written."""

import logging
from collections.abc import Callable, Iterable, Iterator
from itertools import islice

import numpy as np

from semantic_search.documents import Document
from semantic_search.encoder import Encoder
from semantic_search.stores.base import VectorStore

log = logging.getLogger(__name__)


def batched(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def document_texts(documents: list[Document]) -> list[str]:
    """Title and text together, as the search sees them."""
    return [f"{d.title}. {d.text}" if d.title else d.text for d in documents]


def embed_documents(encoder: Encoder, documents: list[Document]) -> np.ndarray:
    """Long texts are cut at the model's limit (BM25 still indexes all of the text)."""
    return encoder.encode(document_texts(documents))


def index_documents(
    store: VectorStore,
    encoder: Encoder,
    documents: Iterable[Document],
    *,
    batch_size: int = 256,
    vectors: np.ndarray | None = None,
    on_batch: Callable[[int], None] | None = None,
) -> int:
    """Upserts `documents` (embedding them unless `vectors` are given, in the same order) and
    calls `on_batch(total_so_far)` after each durable write. Returns how many were written."""
    total = 0
    for batch in batched(documents, batch_size):
        if vectors is None:
            batch_vectors = embed_documents(encoder, batch)
        else:
            batch_vectors = vectors[total : total + len(batch)]
        total += store.upsert(batch, batch_vectors)
        if on_batch:
            on_batch(total)
    store.optimize()
    return total
