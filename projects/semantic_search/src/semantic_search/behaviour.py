"""Behaviour stage (`ss_behaviour`): behavioural tests of the ranking the service runs (the
hybrid retriever over the pipeline's index, with the evaluated retrieval parameters):

- invariance: the top result does not change when the query's casing or punctuation does
  (lower case, upper case, punctuation stripped, a question mark added);
- an article's exact title as the query ranks that article in the top k;
- minimum functionality: known-item recall@k on held-out queries reaches a floor.

Any test below its bound fails the stage; the report is `reports/semantic_search/behaviour.json`.
"""

import re
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlstack.validate import Checks

Search = Callable[[str, int], list[str]]  # query, k -> ranked document ids

PUNCTUATION = re.compile(f"[{re.escape(string.punctuation)}]")
VARIANTS: dict[str, Callable[[str], str]] = {
    "lower": str.lower,
    "upper": str.upper,
    "no_punctuation": lambda q: " ".join(PUNCTUATION.sub(" ", q).split()),
    "question_mark": lambda q: q.rstrip(".!?") + "?",
}


def run_tests(search: Search, queries: list[dict[str, str]], params: dict[str, Any]) -> Checks:
    """`queries`: known-item queries ({"query", "relevant"}), the relevant id being the
    article's title (as in the pipeline's corpus)."""
    k = params["k"]
    checks = Checks()
    checks.figures = {"queries": len(queries), "k": k}
    top = {q["query"]: search(q["query"], k) for q in queries}

    for name, change in VARIANTS.items():
        same = [
            (search(change(q), 1) or [None])[0] == (ranked or [None])[0]
            for q, ranked in top.items()
        ]
        checks.threshold(
            f"invariance_{name}", sum(same) / max(len(same), 1), floor=params["min_invariance"]
        )

    titles = [q["relevant"] for q in queries]
    found = [title in search(title, k) for title in titles]
    checks.threshold(
        "title_in_top_k", sum(found) / max(len(found), 1), floor=params["min_title_top_k"]
    )

    hits = [q["relevant"] in top[q["query"]] for q in queries]
    recall = sum(hits) / max(len(hits), 1)
    checks.threshold("known_item_recall_at_k", recall, floor=params["min_recall_at_k"])
    return checks


def retriever_search(params: dict[str, Any]) -> Search:
    """The hybrid search the service runs, on the pipeline's index and INT8 encoder."""
    from semantic_search.encoder import Encoder
    from semantic_search.pipeline import ENCODER, INDEX, SERVED_VARIANT
    from semantic_search.retrieval import Retriever, SearchMode
    from semantic_search.stores.lance import LanceStore

    encoder = Encoder(ENCODER, variant=SERVED_VARIANT, threads=params["evaluate"]["threads"])
    retriever = Retriever(encoder, LanceStore(INDEX, encoder.dim), **params["retrieval"])

    def search(query: str, k: int) -> list[str]:
        hits = retriever.search(query, k=k, mode=SearchMode.hybrid).hits
        return [h.document.id for h in hits]

    return search


def behaviour(data_dir: Path, report_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    import json

    b = params["behaviour"]
    lines = (data_dir / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line) for line in lines if line.strip()][: b["queries"]]
    return run_tests(retriever_search(params), queries, b).finish(report_path)
