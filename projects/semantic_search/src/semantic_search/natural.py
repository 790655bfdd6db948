"""The natural-question evaluation: questions as people ask them, written apart from the corpus
(shared by the RAG chatbot's `rag_natural_eval` and semantic search's `ss_natural_eval`).

`projects/rag_chatbot/data/natural_questions.jsonl` (see NATURAL_QUESTIONS.md beside it) holds
plain-language questions, each with the title of the article that answers it, or none
(`answerable: false`: no article of the corpus answers it), in a fixed tune/test split.

A retrieval system is run once per question (`Outcome`: the ranked article titles, the top
relevance the floor is compared with, the milliseconds it took) and scored:
- recall@1, recall@k and MRR of the answer article (answerable questions);
- "I don't know" rate: answerable questions where no source clears the relevance floor (the
  service then answers "I don't know from these documents" without calling the generator);
- refusal rate: unanswerable questions where no source clears it;
- latency percentiles of the whole retrieval, query encoding included.

The floor is chosen on the tune split (`choose_floor`) and reported on the test split.
"""

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

NATURAL = Path("projects/rag_chatbot/data/natural_questions.jsonl")
FIELDS = ("id", "question", "answer_title", "answerable", "split")
SPLITS = ("tune", "test")


@dataclass(frozen=True)
class Outcome:
    ranked: list[str]  # article titles in retrieval order (an article may repeat: its chunks)
    relevance: float | None  # the top relevance among them; None when nothing was retrieved
    ms: float = 0.0


def load_questions(path: Path = NATURAL) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    if problems := check_questions(rows):
        raise ValueError(f"{path}: " + "; ".join(problems[:5]))
    return rows


def check_questions(rows: Sequence[dict], titles: set[str] | None = None) -> list[str]:
    """What is wrong with a question file (empty: nothing). With `titles` (the corpus), every
    answer must be one of them and no unanswerable question may name one."""
    problems: list[str] = []
    seen_ids: set[str] = set()
    seen_questions: set[str] = set()
    for n, r in enumerate(rows):
        where = f"row {n} ({r.get('id', '?')})"
        if set(r) != set(FIELDS):
            problems.append(f"{where}: fields {sorted(r)}, expected {sorted(FIELDS)}")
            continue
        if r["id"] in seen_ids:
            problems.append(f"{where}: duplicate id")
        key = " ".join(r["question"].lower().split())
        if key in seen_questions:
            problems.append(f"{where}: duplicate question")
        seen_ids.add(r["id"])
        seen_questions.add(key)
        if r["split"] not in SPLITS:
            problems.append(f"{where}: split {r['split']!r}")
        if not isinstance(r["answerable"], bool) or r["answerable"] != bool(r["answer_title"]):
            problems.append(f"{where}: answerable must say whether answer_title is set")
        if not r["question"].strip().endswith("?"):
            problems.append(f"{where}: not a question")
        if titles is not None and r["answer_title"] and r["answer_title"] not in titles:
            problems.append(f"{where}: {r['answer_title']!r} is not a corpus title")
    return problems


def split(rows: Iterable[dict], name: str) -> list[dict]:
    return [r for r in rows if r["split"] == name]


def percentiles(ms: Sequence[float]) -> dict[str, float]:
    if not ms:
        return {}
    return {f"p{p}": round(float(np.percentile(ms, p)), 2) for p in (50, 95, 99)}


def _mean(values: Sequence[float | bool]) -> float:
    return round(float(np.mean(values)), 4) if values else 0.0


def _below(outcome: Outcome, floor: float) -> bool:
    return outcome.relevance is None or outcome.relevance < floor


def score(
    questions: Sequence[dict], outcomes: Sequence[Outcome], floor: float | None, k: int = 5
) -> dict[str, float]:
    """The metrics of one split; `floor` None leaves out the two floor rates."""
    pairs = list(zip(questions, outcomes, strict=True))
    answerable = [(q, o) for q, o in pairs if q["answerable"]]
    unanswerable = [(q, o) for q, o in pairs if not q["answerable"]]
    ranks = [
        o.ranked.index(q["answer_title"]) + 1 if q["answer_title"] in o.ranked[:k] else None
        for q, o in answerable
    ]
    out = {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "recall@1": _mean([r == 1 for r in ranks]),
        f"recall@{k}": _mean([r is not None for r in ranks]),
        f"mrr@{k}": _mean([1 / r if r else 0.0 for r in ranks]),
    }
    if floor is not None:
        out["idk_answerable"] = _mean([_below(o, floor) for _, o in answerable])
        out["refused_unanswerable"] = _mean([_below(o, floor) for _, o in unanswerable])
    out |= {f"latency_{p}_ms": v for p, v in percentiles([o.ms for o in outcomes]).items()}
    return out


def floor_sweep(
    questions: Sequence[dict], outcomes: Sequence[Outcome], grid: Sequence[float]
) -> list[dict[str, float]]:
    rows = []
    for floor in grid:
        s = score(questions, outcomes, float(floor))
        rows.append(
            {
                "min_relevance": round(float(floor), 3),
                "idk_answerable": s["idk_answerable"],
                "refused_unanswerable": s["refused_unanswerable"],
            }
        )
    return rows


def choose_floor(
    questions: Sequence[dict],
    outcomes: Sequence[Outcome],
    *,
    max_idk: float,
    grid: Sequence[float] = tuple(np.round(np.arange(0.0, 0.801, 0.01), 2)),
) -> dict[str, Any]:
    """The floor that refuses the most unanswerable questions while saying "I don't know" to at
    most `max_idk` of answerable ones (ties: the lower floor); with none under `max_idk`, the best
    balanced accuracy."""
    sweep = floor_sweep(questions, outcomes, grid)
    ok = [r for r in sweep if r["idk_answerable"] <= max_idk]
    if ok:
        best = max(ok, key=lambda r: (r["refused_unanswerable"], -r["min_relevance"]))
        rule = f"most unanswerable refused with idk_answerable <= {max_idk}"
    else:
        best = max(sweep, key=lambda r: r["refused_unanswerable"] - r["idk_answerable"])
        rule = "best balanced accuracy (no floor kept idk_answerable under the cap)"
    return {
        "value": best["min_relevance"],
        "chosen_on": "natural tune split",
        "rule": rule,
        "tune": best,
        "sweep": sweep[::5],
    }


def run(
    search: Callable[[str], Outcome], questions: Sequence[dict], warm_up: int = 10
) -> list[Outcome]:
    """Every question once, after `warm_up` untimed ones (caches, thread pools)."""
    for q in questions[:warm_up]:
        search(q["question"])
    return [search(q["question"]) for q in questions]
