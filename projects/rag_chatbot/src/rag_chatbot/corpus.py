"""The embedded default corpus and the evaluation questions, from the packaged Wikipedia summaries.

Articles are split once, by seed: a few are *held out* of the index (questions about them are
ones the corpus cannot answer); of the rest, questions come from two disjoint article sets,
`tune` (for choosing thresholds) and `test` (only for the report).

Question kinds, each with its source article known:
- overview: "Who was X?" / "What is X?"; the reference is the summary's first sentence.
- identify: the article's short description as a question ("What is the 1951 American novel by
  J. D. Salinger?"); the answer is the title, which the question does not contain.
- detail: a later sentence holding a year, asked about by year ("What happened in 1887 in the
  history of X?"); the support is in one chunk, not in the opening.
"""

import random
import re
from dataclasses import asdict, dataclass
from typing import Any

from mlstack.datasets import sentences, wiki_summaries
from rag_chatbot.extract import Section

YEAR = re.compile(r"\b(1[0-9]{3}|20[0-2][0-9])\b")


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    kind: str  # overview | identify | detail | unanswerable
    split: str  # tune | test
    source: str  # the article's doc id; "" for unanswerable ones
    reference: str  # the sentence or title that answers it
    answerable: bool


def doc_id(article: dict[str, str]) -> str:
    return "wiki/" + article["title"]


def as_sections(article: dict[str, str]) -> list[Section]:
    return [Section(article["extract"])]


def describe(article: dict[str, str]) -> dict[str, str]:
    """Chunk metadata: the article's short description, a field BM25 may weight
    (`retrieval.bm25_fields`); empty when the article has none."""
    d = article.get("description", "").strip()
    return {"description": d} if d else {}


def split_articles(seed: int, held_out: int) -> tuple[list[dict], list[dict]]:
    """(indexed, held out); deterministic for a seed."""
    articles = sorted(wiki_summaries(), key=lambda a: a["title"])
    random.Random(seed).shuffle(articles)
    return articles[held_out:], articles[:held_out]


def _overview(a: dict[str, str]) -> str:
    return f"Who was {a['title']}?" if a["topic"] == "People" else f"What is {a['title']}?"


def _identify(a: dict[str, str]) -> str | None:
    d = a.get("description", "").strip().rstrip(".")
    if len(d.split()) < 3 or a["title"].lower() in d.lower():
        return None
    return f"What is the {d[0].lower() + d[1:]}?"


def _detail(a: dict[str, str]) -> tuple[str, str] | None:
    for s in sentences(a["extract"])[1:]:
        if (m := YEAR.search(s)) and len(s.split()) >= 8:
            subject = a["title"]
            topic = (
                subject[0].lower() + subject[1:]
                if subject.startswith("History of")
                else f"history of {subject}"
            )
            return f"What happened in {m.group(1)} in the {topic}?", s
    return None


def build_questions(
    indexed: list[dict], held_out: list[dict], *, per_kind: int, tune_share: float, seed: int
) -> list[Question]:
    """`per_kind` answerable questions of each kind (and as many unanswerable as identify ones,
    capped by the held-out articles), each from a different article, split tune/test."""
    rng = random.Random(seed)
    pool = [a for a in indexed if len(sentences(a["extract"])) >= 2]
    rng.shuffle(pool)
    out: list[Question] = []
    used: set[str] = set()

    def add(kind: str, a: dict, question: str, reference: str, answerable: bool = True) -> None:
        n = len([q for q in out if q.kind == kind])
        split = "tune" if rng.random() < tune_share else "test"
        out.append(
            Question(
                f"{kind}-{n}",
                question,
                kind,
                split,
                doc_id(a) if answerable else "",
                reference,
                answerable,
            )
        )
        used.add(a["title"])

    makers = {
        "overview": lambda a: (_overview(a), sentences(a["extract"])[0]),
        "identify": lambda a: (q, a["title"]) if (q := _identify(a)) else None,
        "detail": _detail,
    }
    for kind, make in makers.items():
        for a in pool:
            if len([q for q in out if q.kind == kind]) >= per_kind:
                break
            if a["title"] not in used and (made := make(a)):
                add(kind, a, *made)
    for a in held_out:
        made = makers["identify"](a) if rng.random() < 0.5 else None
        question, reference = made or makers["overview"](a)
        add("unanswerable", a, question, reference, answerable=False)
    return out


def questions_report(questions: list[Question]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for q in questions:
        counts[f"{q.split}.{q.kind}"] = counts.get(f"{q.split}.{q.kind}", 0) + 1
    return {"questions": len(questions), "by_split_and_kind": dict(sorted(counts.items()))}


def to_rows(questions: list[Question]) -> list[dict[str, Any]]:
    return [asdict(q) for q in questions]
