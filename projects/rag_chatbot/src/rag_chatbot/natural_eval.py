"""The `rag_natural_eval` stage: the natural questions (natural.py) through the retrieval the
service runs, and through each variant of it in params.yaml (`rag_chatbot.natural.variants`), so
every change tried has its figures on both splits.

The service's retrieval is `Rag.retrieve`: query encoding, hybrid BM25 + dense search fused by
reciprocal rank, MMR, the relevance floor and the context budget; no generator rewriting (a
first question has no history to rewrite with). Its relevance floor is chosen on the tune split
(`natural.choose_floor`) and written to reports/rag_chatbot/natural.json, where `rag_evaluate`
takes it from (`min_relevance: natural`) into the serving card.
"""

import contextlib
from dataclasses import replace
from typing import Any

from rag_chatbot.answer import Rag, RagConfig
from semantic_search.natural import Outcome, choose_floor, load_questions, run, score, split

REPORT = "natural.json"
# What a variant may change: the retrieval config, the fusion, BM25's fields, the chunk index.
RETRIEVER_KEYS = ("rrf_k", "dense_weight", "bm25_weight", "candidates")
CONFIG_KEYS = ("k", "mode", "diversify", "max_per_document")


def service_retrieval(p: dict[str, Any]) -> dict[str, Any]:
    """params.yaml's retrieval settings, as the service runs them (the serving card's)."""
    r = p["retrieval"]
    return {
        "chunk_tokens": p["chunking"]["default"],
        "k": r["k"],
        "mode": r["mode"],
        "diversify": r["diversify"],
        "max_per_document": r.get("max_per_document"),
        "bm25_fields": dict(r.get("bm25_fields") or {}),
        "expand": r.get("expand"),
        **{key: r[key] for key in RETRIEVER_KEYS if key in r},
    }


def rag_search(rag: Rag, config: RagConfig, queries: dict[str, str] | None = None):
    """question -> Outcome through `Rag.retrieve`, floor and budget off (all k sources).
    `queries`: what to search for each question instead (an expansion made beforehand: the
    latency is retrieval's alone)."""
    import time

    raw = replace(config, min_relevance=-1.0, context_tokens=10**9)

    def search(question: str) -> Outcome:
        query = queries.get(question, question) if queries else question
        t0 = time.perf_counter()
        retrieval = rag.retrieve(query, raw, question=question)
        ms = (time.perf_counter() - t0) * 1000
        return Outcome([s.title for s in retrieval.sources], retrieval.top_relevance, ms)

    return search


class Libraries:
    """One opened index per (chunk size, BM25 fields): variants share what they can."""

    def __init__(self, p: dict[str, Any], threads: int) -> None:
        self.p, self.threads = p, threads
        self._open: dict[tuple, Any] = {}

    def get(self, chunk_tokens: int, bm25_fields: dict[str, int]):
        from rag_chatbot.pipeline import open_library

        key = (chunk_tokens, tuple(sorted(bm25_fields.items())))
        if key not in self._open:
            self._open[key] = open_library(
                chunk_tokens,
                self.p["chunking"]["overlap_tokens"],
                threads=self.threads,
                bm25_fields=bm25_fields,
            )
        return self._open[key]


def setup_rag(setup: dict[str, Any], libraries: Libraries, tokenizer) -> tuple[Rag, RagConfig]:
    """The Rag a setup describes (no generator), and its config (no floor yet)."""
    from semantic_search.retrieval import Retriever

    library = libraries.get(setup["chunk_tokens"], setup["bm25_fields"])
    retriever = Retriever(
        library.encoder, library.store, **{k: setup[k] for k in RETRIEVER_KEYS if k in setup}
    )
    keys = {k: setup.get(k) for k in CONFIG_KEYS}
    config = RagConfig(**keys, rewrite=False, expand=setup.get("expand"))
    return Rag(retriever, None, tokenizer, config), config


def evaluate_setup(
    setup: dict[str, Any],
    libraries: Libraries,
    tokenizer,
    questions: list[dict],
    max_idk: float,
    queries: dict[str, str] | None = None,
) -> dict[str, Any]:
    rag, config = setup_rag(setup, libraries, tokenizer)
    search = rag_search(rag, config, queries)
    tune, test = split(questions, "tune"), split(questions, "test")
    tune_out, test_out = run(search, tune), run(search, test)
    floor = choose_floor(tune, tune_out, max_idk=max_idk)
    k = setup["k"]
    return {
        "setup": setup,
        "min_relevance": floor,
        "tune": score(tune, tune_out, floor["value"], k),
        "test": score(test, test_out, floor["value"], k),
        "misses": {"test": _misses(test, test_out, k)},
    }


def _misses(questions: list[dict], outcomes: list[Outcome], k: int) -> list[dict]:
    return [
        {"question": q["question"], "answer": q["answer_title"], "got": o.ranked[:3]}
        for q, o in zip(questions, outcomes, strict=True)
        if q["answerable"] and q["answer_title"] not in o.ranked[:k]
    ]


def natural_stage(p: dict[str, Any]) -> dict[str, Any]:
    from rag_chatbot.chunking import load_tokenizer
    from rag_chatbot.pipeline import write_report

    n = p["natural"]
    questions = load_questions()
    tokenizer = load_tokenizer(n["tokenizer"])
    libraries = Libraries(p, n["threads"])
    served = service_retrieval(p)
    report: dict[str, Any] = {
        "questions": {
            s: {
                "answerable": sum(q["answerable"] for q in split(questions, s)),
                "unanswerable": sum(not q["answerable"] for q in split(questions, s)),
            }
            for s in ("tune", "test")
        },
        "variants": {},
    }
    # One generator for the HyDE queries and the answers (one model load). The service's
    # retrieval is timed while it idles (it needs the floor the answers use); the variants after
    # it stops. Measured: p50 17.1 ms before this change, 17.4 after.
    with _generator(n.get("generate")) as url:
        expansions = hyde_expansions(n, served, questions, url)
        if served["expand"] == "hyde" and expansions is None:
            raise ValueError(
                "retrieval.expand: hyde needs natural.generate (a generator to expand with)"
            )
        queries = expansions if served["expand"] == "hyde" else None
        report["service"] = evaluate_setup(
            served, libraries, tokenizer, questions, n["max_idk"], queries
        )
        report["min_relevance"] = {
            k: v for k, v in report["service"]["min_relevance"].items() if k != "sweep"
        }
        if url:
            floor = report["min_relevance"]["value"]
            report["answers"] = answer_splits(
                p, served, floor, libraries, tokenizer, questions, n["generate"], url
            )
    for name, change in (n.get("variants") or {}).items():
        setup = {**served, **change}
        queries = expansions if setup["expand"] == "hyde" else None
        if setup["expand"] and queries is None:
            report["variants"][name] = {"change": change, "skipped": "no generator (generate)"}
            continue
        result = evaluate_setup(setup, libraries, tokenizer, questions, n["max_idk"], queries)
        report["variants"][name] = {
            "change": change,
            "tune": result["tune"],
            "test": result["test"],
            "min_relevance": result["min_relevance"]["value"],
        }
    return write_report(REPORT, report)


@contextlib.contextmanager
def _generator(g: dict[str, Any] | None):
    """The `generate` endpoint's URL while it runs; None when there is none."""
    if not g:
        yield None
        return
    from rag_chatbot.evaluate import generator_endpoint

    with generator_endpoint(g) as url:
        yield url


def hyde_expansions(
    n: dict[str, Any], served: dict, questions: list[dict], url: str | None
) -> dict[str, str] | None:
    """The HyDE query of every question (expansion.py), made once through the generator at
    `url` when the service or a variant expands (`expand: hyde`); None when none does or there
    is no generator."""
    setups = [served, *({**served, **c} for c in (n.get("variants") or {}).values())]
    if not (url and any(s.get("expand") == "hyde" for s in setups)):
        return None
    from rag_chatbot.expansion import hyde_queries

    return hyde_queries(url, n["generate"], [q["question"] for q in questions])


def answer_splits(
    p, served, floor: float, libraries, tokenizer, questions, g, url: str
) -> dict[str, Any]:
    """natural_answers.generate: the served retrieval, the floor chosen on tune, the service's
    context budget and generation limits."""
    from rag_chatbot.natural_answers import generate, sample

    rag, config = setup_rag(served, libraries, tokenizer)
    config = replace(
        config,
        min_relevance=floor,
        context_tokens=p["retrieval"]["context_tokens"],
        answer_tokens=p["generation"]["answer_tokens"],
        support_threshold=p["evaluate"]["support_threshold"],
    )
    names = g.get("splits") or ("tune", "test")
    splits = {s: sample(split(questions, s), g.get("per_split")) for s in names}
    return generate(rag, config, g, splits, url)
