"""Validate stage (`ss_validate`, before the encoder is quantized and the corpus embedded): the
prepared corpus and its splits checked with pandera.

Checks: the corpus's schema (unique, non-blank ids; a title; a text within word-count bounds; a
topic from the known set, every topic present), the known-item queries (non-blank, one per
article, every answer an article of the corpus) and no leakage: no calibration sentence (used to
choose the INT8 layers) comes from a held-out article, whose sentences the parity check and the
queries use. Any failure fails the stage.
"""

import json
from pathlib import Path
from typing import Any

from mlstack.datasets import sentences
from mlstack.validate import Checks, split_leakage


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def normalise(text: str) -> str:
    """Case and spacing do not make a sentence new."""
    return " ".join(text.lower().split())


def corpus_schema(params: dict[str, Any]) -> Any:
    import pandera.pandas as pa

    low, high = params["words"]
    return pa.DataFrameSchema(
        {
            "id": pa.Column(str, pa.Check.str_matches(r"\S"), unique=True),
            "title": pa.Column(str, pa.Check.str_matches(r"\S")),
            "text": pa.Column(str, pa.Check.str_matches(r"\S")),
            "words": pa.Column(int, pa.Check.in_range(low, high)),
            "topic": pa.Column(str, pa.Check.isin(params["topics"])),
        },
        checks=[
            pa.Check(
                lambda df: set(params["topics"]) <= set(df["topic"]),
                element_wise=False,
                name="every_topic_present",
                error=f"every topic of {params['topics']} has an article",
            )
        ],
    )


def queries_schema(ids: set[str]) -> Any:
    import pandera.pandas as pa

    return pa.DataFrameSchema(
        {
            "query": pa.Column(str, pa.Check.str_matches(r"\S")),
            "relevant": pa.Column(
                str,
                pa.Check(lambda s: s.isin(ids), name="relevant_in_corpus"),
                unique=True,
            ),
        }
    )


def validate(data_dir: Path, report_path: Path, params: dict[str, Any]) -> dict[str, Any]:
    import pandas as pd

    docs = read_jsonl(data_dir / "corpus.jsonl")
    corpus = pd.DataFrame(
        [
            {
                "id": d.get("id", ""),
                "title": d.get("title", ""),
                "text": d.get("text", ""),
                "words": len(str(d.get("text", "")).split()),
                "topic": d.get("topic", ""),
            }
            for d in docs
        ],
        columns=["id", "title", "text", "words", "topic"],
    )
    queries = pd.DataFrame(read_jsonl(data_dir / "queries.jsonl"), columns=["query", "relevant"])
    checks = Checks()
    checks.figures = {
        "documents": len(corpus),
        "queries": len(queries),
        "topics": int(corpus["topic"].nunique()),
    }
    checks.add(
        "corpus_size",
        len(corpus) >= params["min_documents"],
        {"documents": len(corpus), "minimum": params["min_documents"]},
    )
    checks.frame("corpus", corpus, corpus_schema(params))
    checks.frame("queries", queries, queries_schema(set(corpus["id"])))

    texts = dict(zip(corpus["id"], corpus["text"], strict=True))
    held_out = {
        normalise(s) for title in queries["relevant"] for s in sentences(texts.get(title, ""))
    }
    calibration = json.loads((data_dir / "calibration.json").read_text())
    parity = json.loads((data_dir / "parity.json").read_text())
    leaks = split_leakage(
        {
            "calibration": map(normalise, calibration),
            "held_out_articles": held_out | {normalise(s) for s in parity},
        }
    )
    checks.add("no_leakage", not leaks, leaks or None)
    return checks.finish(report_path)
