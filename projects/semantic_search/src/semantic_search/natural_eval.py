"""The `ss_natural_eval` stage: the natural questions (natural.py) through the search the service
runs (params.yaml `semantic_search.retrieval`, its serving card), in each mode; recall@1/5/10 of
the answer article on the tune and test splits and latency with query encoding. Semantic search
has no relevance floor: unanswerable questions count for latency only."""

import time
from typing import Any

from semantic_search.natural import Outcome, check_questions, load_questions, run, score, split

RETRIEVER_KEYS = ("rrf_k", "dense_weight", "bm25_weight", "candidates")


def retriever_options(retrieval: dict[str, Any]) -> dict[str, Any]:
    """params.yaml's retrieval section as `Retriever` keywords (bm25_fields go to the store)."""
    return {k: v for k, v in retrieval.items() if k in RETRIEVER_KEYS}


def natural_stage(p: dict[str, Any]) -> dict[str, Any]:
    from semantic_search.encoder import Encoder
    from semantic_search.ingest import read_jsonl
    from semantic_search.pipeline import DATA, ENCODER, INDEX, REPORTS, SERVED_VARIANT, _write
    from semantic_search.retrieval import Retriever, SearchMode
    from semantic_search.stores.lance import LanceStore

    questions = load_questions()
    titles = {d.id for d in read_jsonl(DATA / "corpus.jsonl")}
    if problems := check_questions(questions, titles):
        raise ValueError("natural questions: " + "; ".join(problems[:5]))
    r = p["retrieval"]
    encoder = Encoder(ENCODER, variant=SERVED_VARIANT, threads=p["evaluate"]["threads"])
    store = LanceStore(INDEX, encoder.dim, bm25_fields=r.get("bm25_fields"))
    retriever = Retriever(encoder, store, **retriever_options(r))
    report: dict[str, Any] = {"served": "hybrid", "retrieval": r, "modes": {}}
    for mode in SearchMode:

        def search(question: str, mode: SearchMode = mode) -> Outcome:
            t0 = time.perf_counter()
            hits = retriever.search(question, k=10, mode=mode).hits
            ms = (time.perf_counter() - t0) * 1000
            return Outcome([h.document.id for h in hits], None, ms)

        report["modes"][str(mode)] = {}
        for name in ("tune", "test"):
            rows = split(questions, name)
            outcomes = run(search, rows)
            at5 = score(rows, outcomes, None, k=5)
            report["modes"][str(mode)][name] = {
                **score(rows, outcomes, None, k=10),
                "recall@5": at5["recall@5"],
            }
    return _write(REPORTS / "natural.json", report)
