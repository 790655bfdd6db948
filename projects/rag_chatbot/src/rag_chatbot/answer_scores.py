"""Scores of generated answers (split from evaluate.py): one row per answer, then the figures of
a configuration with the 95% interval of each.

The sample is small (48 questions a configuration), so every figure comes with its interval and
its count: Wilson for shares of yes/no outcomes, a percentile bootstrap over answers for means of
per-answer scores. A figure with nothing to measure (no citation written, no unanswerable
question asked) is None, never 0.0: "no citations" is not "every citation wrong".
"""

import math
from typing import Any

import numpy as np

from rag_chatbot import prompts
from rag_chatbot.answer import cite
from rag_chatbot.support import best_support, support

BOOTSTRAP_RESAMPLES = 2000


def score_answer(q: dict, event: dict, encoder, threshold: float) -> dict[str, Any]:
    """Metrics of one generated answer (its citations as the model wrote them)."""
    sources = event["retrieval"].sources
    row: dict[str, Any] = {
        "id": q["id"],
        "answerable": q["answerable"],
        "no_answer": event["no_answer"],
        "answer": event["answer"],
    }
    if event["no_answer"]:
        return row
    texts = [s.text for s in sources]
    sentences = prompts.split_sentences(event["answer"])
    supported = [best_support(s, texts)[1] >= threshold for s in sentences]
    cited = correct = 0
    for sentence in sentences:
        for n in prompts.cited_numbers(sentence):
            cited += 1
            correct += 1 <= n <= len(sources) and support(sentence, texts[n - 1]) >= threshold
    _, attributed, _ = cite(event["answer"], sources, attribute=True, threshold=threshold)
    plain = prompts.strip_citations(event["answer"])
    q_vec, a_vec = encoder.encode([q["question"], plain])
    row |= {
        "faithfulness": float(np.mean(supported)) if supported else 0.0,
        "citations": cited,
        "correct_citations": int(correct),
        "cited_after_attribution": bool(attributed),
        "answer_relevance": float(q_vec @ a_vec),
        "answer_correctness": support(q["reference"], plain),
    }
    return row


def wilson(successes: int, n: int, z: float = 1.96) -> list[float] | None:
    """95% Wilson score interval of a share: unlike the normal approximation it stays inside
    [0, 1] and is not zero-width at 0 or n successes, both common at n = 12."""
    if n == 0:
        return None
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def bootstrap(values: list[float], seed: int = 0) -> list[float] | None:
    """95% percentile bootstrap interval of a mean (seeded: the same rows give the same
    interval, so a re-run changes it only when the answers change)."""
    if not values:
        return None
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), (BOOTSTRAP_RESAMPLES, len(data)))].mean(axis=1)
    return [round(float(np.percentile(means, 2.5)), 4), round(float(np.percentile(means, 97.5)), 4)]


def generation_metrics(rows: list[dict]) -> dict[str, Any]:
    """Each figure, `n` (what it is a share or mean of) and `interval95` per figure."""
    answered = [r for r in rows if not r["no_answer"]]
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    correct_answered = [r for r in answered if r["answerable"]]
    cited = sum(r["citations"] for r in answered)
    correct = sum(r["correct_citations"] for r in answered)

    def mean(key: str, rs: list[dict]) -> tuple[float | None, int, list[float] | None]:
        values = [float(r[key]) for r in rs]
        return (float(np.mean(values)) if values else None), len(values), bootstrap(values)

    def share(flags: list[bool]) -> tuple[float | None, int, list[float] | None]:
        n, yes = len(flags), sum(flags)
        return (yes / n if n else None), n, wilson(yes, n)

    # Citations cluster within answers, so the Wilson interval over citations is a lower bound
    # on the uncertainty; its `n` is the number of citations, stated beside it.
    figures = {
        "faithfulness": mean("faithfulness", answered),
        "citation_correctness": (correct / cited if cited else None, cited, wilson(correct, cited)),
        "answers_with_citations": share([r["citations"] > 0 for r in answered]),
        "answers_with_citations_after_attribution": share(
            [bool(r["cited_after_attribution"]) for r in answered]
        ),
        "answer_relevance": mean("answer_relevance", answered),
        "answer_correctness": mean("answer_correctness", correct_answered),
        "no_answer_accuracy": share([bool(r["no_answer"]) for r in unanswerable]),
        "answered_rate": share([not r["no_answer"] for r in answerable]),
    }
    out: dict[str, Any] = {
        k: (None if v is None else round(v, 4)) for k, (v, _, _) in figures.items()
    }
    out["n"] = {k: n for k, (_, n, _) in figures.items()}
    out["interval95"] = {k: ci for k, (_, _, ci) in figures.items()}
    return out
