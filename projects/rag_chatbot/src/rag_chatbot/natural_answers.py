"""Answer-level figures on the natural questions (`rag_chatbot.natural.generate`): a sample of
each split answered end to end by `Rag.answer` with the served retrieval, the relevance floor
chosen on tune and a generator (the LLM chat app in-process, as rag_evaluate runs it):

- answer-article citation rate: answerable questions whose answer cites the answer article (the
  citations the user sees: the model's `[n]` markers and the service's attribution);
- "I don't know" rate on answerable questions and refusal rate on unanswerable ones, as answered
  (retrieval's floor or the model's own "I don't know").
"""

from typing import Any

from rag_chatbot.answer import Rag, RagConfig


def answer_metrics(questions: list[dict], events: list[dict]) -> dict[str, Any]:
    pairs = list(zip(questions, events, strict=True))
    answerable = [(q, e) for q, e in pairs if q["answerable"]]
    unanswerable = [(q, e) for q, e in pairs if not q["answerable"]]

    def rate(flags: list[bool]) -> float:
        return round(sum(flags) / len(flags), 4) if flags else 0.0

    return {
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "cites_answer_article": rate(
            [
                any(c.source.title == q["answer_title"] for c in e["citations"])
                for q, e in answerable
            ]
        ),
        "idk_answerable": rate([e["no_answer"] for _, e in answerable]),
        "refused_unanswerable": rate([e["no_answer"] for _, e in unanswerable]),
    }


def sample(questions: list[dict], per_split: int | None) -> list[dict]:
    """The first `per_split` answerable and a proportional share of unanswerable questions, in
    file order (the file's order is already a seeded shuffle); None: all of them."""
    if per_split is None:
        return list(questions)
    answerable = [q for q in questions if q["answerable"]]
    unanswerable = [q for q in questions if not q["answerable"]]
    n_un = round(per_split * len(unanswerable) / max(1, len(questions)))
    n_ans = per_split - n_un
    return answerable[:n_ans] + unanswerable[:n_un]


def generate(
    rag: Rag, config: RagConfig, g: dict[str, Any], splits: dict[str, list[dict]], url: str
) -> dict[str, Any]:
    """Each split's sample answered through the generator at `url`; its answer metrics."""

    from rag_chatbot.evaluate import answer_all

    out: dict[str, Any] = {
        "model_dir": g.get("model_dir", ""),
        "backend": g.get("backend", ""),
        "url": g.get("url", ""),
    }
    for name, rows in splits.items():
        events, seconds = answer_all(rag, config, rows, url, g)
        out[name] = answer_metrics(rows, events) | {"seconds": round(seconds, 1)}
    return out
