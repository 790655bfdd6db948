"""Fusion, diversification and reranking, and the retriever end to end on LanceDB."""

import numpy as np
import pytest

from semantic_search.documents import Document, Filters, Hit
from semantic_search.highlight import highlight, query_terms
from semantic_search.indexing import index_documents
from semantic_search.retrieval import (
    Retriever,
    mmr,
    reciprocal_rank_fusion,
    spread_sources,
    unit_scale,
)
from semantic_search.stores import open_store


def hit(i: str, score: float = 0.0, vector=None) -> Hit:
    return Hit(Document(id=i, text=f"text {i}"), score, vector)


def test_rrf_rewards_agreement():
    fused = reciprocal_rank_fusion(
        [[hit("a"), hit("b"), hit("c")], [hit("c"), hit("b"), hit("d")]], [1, 1], k=60
    )
    # Found by both lists beats first in one list: c (ranks 3 and 1), b (2 and 2), then a, d.
    assert [h.document.id for h in fused] == ["c", "b", "a", "d"]
    assert fused[0].score == pytest.approx(1 / 63 + 1 / 61)
    weighted = reciprocal_rank_fusion([[hit("a")], [hit("d")]], [1.0, 3.0])
    assert weighted[0].document.id == "d"


def test_mmr_skips_near_duplicates():
    q = np.array([1.0, 0.0], np.float32)
    a = np.array([0.9, 0.1], np.float32)
    hits = [
        hit("a", vector=a / np.linalg.norm(a)),
        hit("a-copy", vector=a / np.linalg.norm(a)),
        hit("other", vector=np.array([0.6, 0.8], np.float32)),
    ]
    assert [h.document.id for h in mmr(q, hits, 2, lambda_=1.0)] == ["a", "a-copy"]
    assert [h.document.id for h in mmr(q, hits, 2, lambda_=0.3)] == ["a", "other"]


def test_mmr_keeps_a_fused_order_when_given_its_scores():
    """Hybrid + MMR must diversify the fused ranking, not fall back to cosine order."""
    q = np.array([1.0, 0.0], np.float32)
    close, far = np.array([1.0, 0.0], np.float32), np.array([0.0, 1.0], np.float32)
    hits = [
        hit("bm25-first", score=0.03, vector=far),
        hit("cosine-first", score=0.01, vector=close),
    ]
    assert mmr(q, hits, 1, lambda_=1.0)[0].document.id == "cosine-first"
    assert mmr(q, hits, 1, lambda_=1.0, relevance=unit_scale(hits))[0].document.id == "bm25-first"


def test_spread_sources_puts_each_sources_first_hits_before_any_sources_next():
    hits = [
        Hit(Document(id=f"{source}#{n}", text="t", source=source), 1.0)
        for source, n in [("a", 0), ("a", 1), ("b", 0), ("a", 2), ("c", 0), ("b", 1)]
    ]
    one = [h.document.id for h in spread_sources(hits, 1)]
    assert one == ["a#0", "b#0", "c#0", "a#1", "a#2", "b#1"]  # nothing dropped
    two = [h.document.id for h in spread_sources(hits, 2)]
    assert two == ["a#0", "a#1", "b#0", "c#0", "b#1", "a#2"]


def test_highlight_marks_query_words():
    text = "Jazz is a music genre. " * 5 + "It originated in New Orleans musicians' communities."
    snippet, spans = highlight(text, query_terms("Where did jazz musicians come from?"))
    marked = [snippet[s:e].lower() for s, e in spans]
    assert "jazz" in marked and any(m.startswith("musician") for m in marked)
    assert "where" not in query_terms("Where is it")


@pytest.fixture(scope="module")
def retriever(encoder_dir, corpus, tmp_path_factory):
    from semantic_search.encoder import Encoder

    encoder = Encoder(encoder_dir, variant="int8")
    store = open_store(str(tmp_path_factory.mktemp("idx") / "index"), encoder.dim)
    index_documents(store, encoder, corpus, batch_size=16)
    return Retriever(encoder, store)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_every_mode_honours_filters_and_k(retriever, mode):
    result = retriever.search("music painting city", k=5, mode=mode, filters=Filters(topic="Arts"))
    assert 0 < len(result.hits) <= 5
    assert {h.document.topic for h in result.hits} == {"Arts"}
    assert "search" in result.timings_ms


def test_bm25_and_hybrid_find_a_quoted_passage(retriever, corpus):
    doc = corpus[25]
    passage = " ".join(doc.text.split()[:12])
    assert retriever.search(passage, k=3, mode="bm25").hits[0].document.id == doc.id
    # The tiny encoder's weights are random, so in hybrid the dense half is noise: top 3 only.
    assert doc.id in [h.document.id for h in retriever.search(passage, k=3, mode="hybrid").hits]


def test_diversify_returns_k_distinct(retriever):
    result = retriever.search("history of art", k=5, mode="hybrid", diversify=0.5)
    ids = [h.document.id for h in result.hits]
    assert len(ids) == 5 == len(set(ids))


class KeywordReranker:
    name = "keyword"

    def score(self, query, passages):
        return np.array([float("Asia" in p) for p in passages])


def test_reranker_reorders(encoder_dir, retriever):
    reranked = Retriever(retriever.encoder, retriever.store, reranker=KeywordReranker())
    result = reranked.search("country river mountain", k=3, mode="hybrid", rerank=True)
    assert all("Asia" in h.document.text for h in result.hits[:1])
    with pytest.raises(ValueError, match="no reranker"):
        retriever.search("x", rerank=True)
