"""The `ss_natural_eval` stage: the natural questions (natural.py) through the search the service
runs (params.yaml `semantic_search.retrieval`, its serving card), in each mode, and through each
variant of it (`semantic_search.natural.variants`: one change each, hybrid mode); recall@1/5/10
of the answer article on the tune and test splits and latency with query encoding. Semantic
search has no relevance floor: unanswerable questions count for latency only."""

import time
from typing import Any

from semantic_search.natural import Outcome, check_questions, load_questions, run, score, split

RETRIEVER_KEYS = ("rrf_k", "dense_weight", "bm25_weight", "candidates")


def retriever_options(retrieval: dict[str, Any]) -> dict[str, Any]:
    """params.yaml's retrieval section as `Retriever` keywords (bm25_fields go to the store)."""
    return {k: v for k, v in retrieval.items() if k in RETRIEVER_KEYS}


def open_retriever(encoder, index, retrieval: dict[str, Any]):
    """The service's retriever over the pipeline's LanceDB index: fusion weights to `Retriever`,
    BM25's field weights (`bm25_fields`) to the store."""
    from semantic_search.retrieval import Retriever
    from semantic_search.stores.lance import LanceStore

    store = LanceStore(index, encoder.dim, bm25_fields=retrieval.get("bm25_fields"))
    return Retriever(encoder, store, **retriever_options(retrieval))


def evaluate(retriever, mode, questions: list[dict]) -> dict[str, Any]:
    def search(question: str) -> Outcome:
        t0 = time.perf_counter()
        hits = retriever.search(question, k=10, mode=mode).hits
        ms = (time.perf_counter() - t0) * 1000
        return Outcome([h.document.id for h in hits], None, ms)

    out = {}
    for name in ("tune", "test"):
        rows = split(questions, name)
        outcomes = run(search, rows)
        at5 = score(rows, outcomes, None, k=5)
        out[name] = {**score(rows, outcomes, None, k=10), "recall@5": at5["recall@5"]}
    return out


def natural_stage(p: dict[str, Any]) -> dict[str, Any]:
    from semantic_search.encoder import Encoder
    from semantic_search.ingest import read_jsonl
    from semantic_search.pipeline import DATA, ENCODER, INDEX, REPORTS, SERVED_VARIANT, _write
    from semantic_search.retrieval import SearchMode

    questions = load_questions()
    titles = {d.id for d in read_jsonl(DATA / "corpus.jsonl")}
    if problems := check_questions(questions, titles):
        raise ValueError("natural questions: " + "; ".join(problems[:5]))
    r = p["retrieval"]
    encoder = Encoder(ENCODER, variant=SERVED_VARIANT, threads=p["evaluate"]["threads"])
    retriever = open_retriever(encoder, INDEX, r)
    report: dict[str, Any] = {"served": "hybrid", "retrieval": r, "modes": {}, "variants": {}}
    for mode in SearchMode:
        report["modes"][str(mode)] = evaluate(retriever, mode, questions)
    for name, change in ((p.get("natural") or {}).get("variants") or {}).items():
        variant = open_retriever(encoder, INDEX, {**r, **change})
        report["variants"][name] = {
            "change": change,
            **evaluate(variant, SearchMode.hybrid, questions),
        }
    return _write(REPORTS / "natural.json", report)
