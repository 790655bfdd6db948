"""Known-item retrieval metrics: each query has exactly one relevant document."""

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np


def rank_metrics(
    ranks: Sequence[int | None], *, cutoffs: Sequence[int] = (1, 10, 100)
) -> dict[str, float]:
    """`ranks[i]` is the 1-based position of query i's relevant document, None if not retrieved.
    With one relevant document, nDCG@10 = 1/log2(rank+1) and MRR@10 = 1/rank (0 past 10)."""
    n = len(ranks)
    r = [x for x in ranks]
    metrics = {
        "ndcg@10": sum(1 / math.log2(x + 1) for x in r if x and x <= 10) / n,
        "mrr@10": sum(1 / x for x in r if x and x <= 10) / n,
    }
    for c in cutoffs:
        metrics[f"recall@{c}"] = sum(1 for x in r if x and x <= c) / n
    return {k: round(v, 4) for k, v in metrics.items()}


def evaluate_system(
    search: Callable[[str], list[str]], queries: list[dict[str, Any]]
) -> tuple[dict[str, float], list[int | None]]:
    """`search(query)` -> ranked document ids (100 deep)."""
    ranks: list[int | None] = []
    for q in queries:
        ids = search(q["query"])
        ranks.append(ids.index(q["relevant"]) + 1 if q["relevant"] in ids else None)
    return rank_metrics(ranks), ranks


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    a = np.asarray(samples_ms)
    return {f"p{p}": round(float(np.percentile(a, p)), 2) for p in (50, 95, 99)}
