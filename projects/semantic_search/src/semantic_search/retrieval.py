"""Dense, BM25 and hybrid (reciprocal rank fusion) search over any `VectorStore`, with filters,
maximal-marginal-relevance diversification, spreading the first places over source documents
and an optional reranker.

    retriever = Retriever(Encoder("models/semantic_search/encoder"), open_store("data/index", 384))
    result = retriever.search("who painted the Mona Lisa", k=5, mode="hybrid")
"""

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from semantic_search.documents import Filters, Hit
from semantic_search.encoder import Encoder
from semantic_search.rerank import Reranker
from semantic_search.stores.base import VectorStore


class SearchMode(StrEnum):
    dense = "dense"
    bm25 = "bm25"
    hybrid = "hybrid"


@dataclass
class SearchResult:
    hits: list[Hit]
    query_tokens: int
    truncated: bool
    timings_ms: dict[str, float] = field(default_factory=dict)
    query_vector: np.ndarray | None = None  # None when nothing needed it (BM25 without MMR)


def reciprocal_rank_fusion(
    rankings: list[list[Hit]], weights: list[float], k: int = 60
) -> list[Hit]:
    """score(d) = sum_i w_i / (k + rank_i(d)); rank from 1. Keeps the first Hit seen per id."""
    fused: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, hit in enumerate(ranking, start=1):
            fused[hit.document.id] = fused.get(hit.document.id, 0.0) + weight / (k + rank)
            if first.get(hit.document.id) is None or first[hit.document.id].vector is None:
                first[hit.document.id] = hit
    order = sorted(fused, key=fused.__getitem__, reverse=True)
    return [Hit(first[i].document, fused[i], first[i].vector) for i in order]


def mmr(
    query: np.ndarray, hits: list[Hit], k: int, lambda_: float, relevance: np.ndarray | None = None
) -> list[Hit]:
    """Maximal marginal relevance: pick, one at a time, the hit that maximises
    lambda * relevance(d) - (1 - lambda) * max sim(d, already picked). Needs hit vectors.
    `relevance` defaults to the cosine with the query; pass the ranking's own scores (scaled to
    [0, 1]) to diversify a BM25, hybrid or reranked order without replacing it."""
    if len(hits) <= 1:
        return hits[:k]
    vectors = np.stack([h.vector for h in hits])
    relevance = vectors @ query if relevance is None else relevance
    similarity = vectors @ vectors.T
    picked: list[int] = []
    left = list(range(len(hits)))
    while left and len(picked) < k:
        redundancy = similarity[np.ix_(left, picked)].max(1) if picked else np.zeros(len(left))
        scores = lambda_ * relevance[left] - (1 - lambda_) * redundancy
        picked.append(left.pop(int(np.argmax(scores))))
    return [hits[i] for i in picked]


def spread_sources(hits: list[Hit], limit: int) -> list[Hit]:
    """The hits reordered so that each `document.source` has at most `limit` hits before every
    other source's first ones (a RAG chunk's source is its document): five chunks of one article
    would otherwise fill the first five places. Nothing is dropped: past the capped hits come
    the others, in order, so a caller that filters (a relevance floor) can still fill its k
    places from one document when no other is left."""
    seen: dict[str, int] = {}
    first, later = [], []
    for hit in hits:
        n = seen.get(hit.document.source, 0)
        (first if n < limit else later).append(hit)
        seen[hit.document.source] = n + 1
    return first + later


def unit_scale(hits: list[Hit]) -> np.ndarray:
    """Scores min-max scaled to [0, 1] (all 1 when they are equal)."""
    scores = np.array([h.score for h in hits], dtype=np.float32)
    span = scores.max() - scores.min() if len(scores) else 0.0
    return (scores - scores.min()) / span if span > 0 else np.ones_like(scores)


class Retriever:
    def __init__(
        self,
        encoder: Encoder,
        store: VectorStore,
        *,
        reranker: Reranker | None = None,
        rrf_k: int = 60,
        dense_weight: float = 1.0,
        bm25_weight: float = 1.0,
        candidates: int = 50,
    ) -> None:
        self.encoder = encoder
        self.store = store
        self.reranker = reranker
        self.rrf_k = rrf_k
        self.weights = {"dense": dense_weight, "bm25": bm25_weight}
        self.candidates = candidates
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="retrieval")

    def embed_query(self, query: str) -> tuple[np.ndarray, int, bool]:
        tokens = self.encoder.tokenize([query])
        return (
            self.encoder.encode_tokenized(tokens)[0],
            int(tokens.token_counts[0]),
            bool(tokens.truncated[0]),
        )

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: SearchMode | str = SearchMode.hybrid,
        filters: Filters | None = None,
        diversify: float | None = None,
        rerank: bool = False,
        query_vector: np.ndarray | None = None,
        with_vectors: bool = False,
        max_per_source: int | None = None,
        rerank_query: str | None = None,
    ) -> SearchResult:
        """`diversify` is MMR's lambda (1.0 = pure relevance); `rerank` needs a reranker.
        `query_vector` skips encoding (the service encodes through its micro-batcher).
        `with_vectors` returns each hit's embedding (MMR asks for them anyway).
        `max_per_source`: at most this many hits of one `document.source` before every other
        source's (`spread_sources`): ask for more than k to let a floor drop some.
        `rerank_query`: what the reranker compares passages with, when not `query` (the user's
        own question where `query` is an expansion of it)."""
        mode = SearchMode(mode)
        if rerank and self.reranker is None:
            raise ValueError("rerank=True but this retriever has no reranker")
        timings: dict[str, float] = {}
        tokens, truncated = 0, False
        widen = diversify is not None or rerank or mode == "hybrid" or max_per_source is not None
        pool = max(k, self.candidates) if widen else k
        need_vectors = with_vectors or diversify is not None
        t0 = time.perf_counter()
        # Hybrid: BM25 needs no embedding, so it runs while the query is encoded (both release
        # the GIL); the dense part is short next to either.
        if mode == SearchMode.hybrid:
            text = self._pool.submit(
                self.store.text, query, pool, filters, with_vectors=need_vectors
            )
        if mode != SearchMode.bm25 and query_vector is None:
            query_vector, tokens, truncated = self.embed_query(query)
            timings["encode"] = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        dense = (
            self.store.dense(query_vector, pool, filters, with_vectors=need_vectors)
            if mode != SearchMode.bm25
            else None
        )
        if mode == SearchMode.dense:
            hits = dense
        elif mode == SearchMode.bm25:
            hits = self.store.text(query, pool, filters, with_vectors=need_vectors)
        else:
            hits = reciprocal_rank_fusion(
                [dense, text.result()], [self.weights["dense"], self.weights["bm25"]], self.rrf_k
            )
        # In hybrid mode BM25 overlaps encoding: "search" is the wait after the encoding.
        timings["search"] = (time.perf_counter() - t1) * 1000

        if rerank:
            t0 = time.perf_counter()
            passages = [h.document.text for h in hits]
            scores = self.reranker.score(rerank_query or query, passages)
            hits = [Hit(h.document, float(s), h.vector) for h, s in zip(hits, scores, strict=True)]
            hits.sort(key=lambda h: h.score, reverse=True)
            timings["rerank"] = (time.perf_counter() - t0) * 1000
        if diversify is not None:
            if query_vector is None:  # BM25 mode: MMR still needs the query's embedding
                query_vector, tokens, truncated = self.embed_query(query)
            # Dense scores are cosines already; other rankings keep their order through MMR.
            relevance = None if mode == SearchMode.dense and not rerank else unit_scale(hits)
            hits = mmr(query_vector, hits, k, diversify, relevance)
        if max_per_source is not None:
            hits = spread_sources(hits, max_per_source)
        return SearchResult(hits[:k], tokens, truncated, timings, query_vector)
