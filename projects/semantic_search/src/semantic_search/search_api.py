"""`/v1/search`: dense, BM25 or hybrid search, its metrics and inference log, and each hit's
snippet with the query's terms highlighted."""

import time

from fastapi import APIRouter, Request

from mlstack.monitor.inference_log import InferenceLog
from mlstack.serve import APIError, Hub, error_responses, offload
from semantic_search import metrics
from semantic_search.api_common import RetrieverDep, tokenize_checked
from semantic_search.highlight import highlight, query_terms
from semantic_search.retrieval import SearchResult
from semantic_search.schemas import SearchHit, SearchRequest, SearchResponse

router = APIRouter(prefix="/v1", tags=["search"])


def _hits(query: str, result: SearchResult) -> list[SearchHit]:
    """Snippets with highlights: regex work over up to k whole documents, so off the loop."""
    terms = query_terms(query)
    hits = []
    for h in result.hits:
        snippet, spans = highlight(h.document.text, terms)
        d = h.document
        hits.append(
            SearchHit(
                id=d.id,
                score=h.score,
                title=d.title,
                topic=d.topic,
                source=d.source,
                date=d.date,
                snippet=snippet,
                highlights=spans,
                metadata=d.metadata,
            )
        )
    return hits


@router.post("/search", response_model=SearchResponse, responses=error_responses(400))
async def search(
    body: SearchRequest, request: Request, hub: Hub, retriever: RetrieverDep
) -> SearchResponse:
    """Dense, BM25 or hybrid search with filters, optional MMR and reranking. 400 for `rerank`
    without a reranker (the schema then allows only false) and for a query over the token
    window with `truncate: false`."""
    if body.rerank and retriever.reranker is None:
        raise APIError(
            400,
            "reranker_unavailable",
            "no reranker is loaded (set SEMANTIC_SEARCH_RERANKER_DIR)",
            param="rerank",
        )
    tokens = await offload(
        tokenize_checked, retriever.encoder, [body.query], "query", body.truncate
    )
    vector = None
    if body.mode != "bm25" or body.diversify is not None:
        t0 = time.perf_counter()
        vector = (await hub.get().predict(tokens.ids))[0]
        metrics.ENCODE_LATENCY.observe(time.perf_counter() - t0)
    result = await offload(
        retriever.search,
        body.query,
        k=body.k,
        mode=body.mode,
        filters=body.filters,
        diversify=body.diversify,
        rerank=body.rerank,
        query_vector=vector,
    )
    mode = str(body.mode)
    metrics.SEARCHES.labels(mode).inc()
    metrics.SEARCH_LATENCY.labels(mode).observe(result.timings_ms["search"] / 1000)
    metrics.RESULTS.labels(mode).observe(len(result.hits))
    if not result.hits:
        metrics.ZERO_RESULTS.labels(mode).inc()
    else:
        metrics.TOP_SCORE.labels(mode).observe(result.hits[0].score)
    log: InferenceLog | None = request.app.state.inference_log
    if log is not None:
        log.log(
            {
                "model": "search",
                "mode": mode,
                "query_chars": len(body.query),
                "query_tokens": int(tokens.token_counts[0]),
                "results": len(result.hits),
                "top_score": result.hits[0].score if result.hits else 0.0,
            }
        )
    timings = {k: round(v, 2) for k, v in result.timings_ms.items()}
    return SearchResponse(
        query=body.query,
        mode=body.mode,
        results=await offload(_hits, body.query, result),
        query_tokens=int(tokens.token_counts[0]),
        truncated=bool(tokens.truncated[0]),
        timings_ms=timings,
    )
