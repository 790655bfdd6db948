"""The DVC stages (see dvc.yaml): rag_index (one index per chunk size) -> rag_questions ->
rag_evaluate. Each reads params.yaml's `rag_chatbot` section and writes to reports/rag_chatbot/."""

import json
import shutil
from pathlib import Path
from typing import Any

from mlstack.stage_report import write_stage_report

DATA = Path("data/rag_chatbot")
REPORTS = Path("reports/rag_chatbot")
ENCODER = Path("models/semantic_search/encoder")
# What the service runs (settings.Settings.serving_card), in the models folder deployments mount.
SERVING_CARD = Path("models/rag_chatbot/serving.json")
# What rag_register installs when the gate promotes: the card the service runs by default.
CHAMPION = Path("models/rag_chatbot/champion")
SERVED_VARIANT = "int8"  # the encoder variant the indexes were built and evaluated with


def index_dir(chunk_tokens: int) -> Path:
    return DATA / f"index-{chunk_tokens}"


def write_report(name: str, report: dict[str, Any]) -> dict[str, Any]:
    """`report` as reports/rag_chatbot/`name`; returns it."""
    return write_stage_report(REPORTS / name, report)


def open_library(
    chunk_tokens: int,
    overlap_tokens: int,
    *,
    variant: str = SERVED_VARIANT,
    threads: int = 0,
    bm25_fields: dict[str, int] | None = None,
    bulk: bool = False,
):
    from rag_chatbot.library import Library
    from semantic_search.encoder import Encoder
    from semantic_search.stores import open_store

    encoder = Encoder(ENCODER, variant=variant, threads=threads, bulk=bulk)
    folder = index_dir(chunk_tokens)
    store = open_store(str(folder), encoder.dim, bm25_fields=bm25_fields)
    return Library(
        store,
        encoder,
        folder / "manifest.json",
        chunk_tokens=chunk_tokens,
        overlap_tokens=overlap_tokens,
    )


def index_stage(p: dict[str, Any]) -> dict[str, Any]:
    """The packaged Wikipedia summaries (minus the held-out articles), chunked at each size."""
    import time

    from tqdm import tqdm

    from rag_chatbot.corpus import as_sections, describe, doc_id, split_articles

    c = p["corpus"]
    indexed, held_out = split_articles(c["seed"], c["held_out_articles"])
    report: dict[str, Any] = {"articles": len(indexed), "held_out": len(held_out), "indexes": {}}
    for size in p["chunking"]["sizes"]:
        shutil.rmtree(index_dir(size), ignore_errors=True)
        library = open_library(
            size, p["chunking"]["overlap_tokens"], threads=c["threads"], bulk=True
        )
        t0 = time.perf_counter()
        with tqdm(desc=f"index {size}-token chunks", unit="chunk") as bar:
            items = (
                (doc_id(a), a["title"], as_sections(a), a["topic"], describe(a)) for a in indexed
            )
            chunks = library.add_many(items, on_batch=lambda n: bar.update(n - bar.n))
        docs = library.documents()
        report["indexes"][str(size)] = {
            "chunks": chunks,
            "seconds": round(time.perf_counter() - t0, 1),
            "chunks_per_article": round(chunks / len(docs), 3),
            "duplicates_dropped": sum(d.duplicates_dropped for d in docs),
        }
    return write_report("index.json", report)


def questions_stage(p: dict[str, Any]) -> dict[str, Any]:
    from rag_chatbot.corpus import build_questions, questions_report, split_articles, to_rows

    c, q = p["corpus"], p["questions"]
    indexed, held_out = split_articles(c["seed"], c["held_out_articles"])
    questions = build_questions(
        indexed, held_out, per_kind=q["per_kind"], tune_share=q["tune_share"], seed=q["seed"]
    )
    DATA.mkdir(parents=True, exist_ok=True)
    rows = to_rows(questions)
    (DATA / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return write_report("questions.json", questions_report(questions))


def evaluate_stage(p: dict[str, Any]) -> dict[str, Any]:
    from rag_chatbot.evaluate import run_evaluation

    rows = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines()]
    report = write_report("evaluation.json", run_evaluation(p, rows))
    card = write_serving_card(p, report)
    if report.get("mlflow_run_id"):
        import mlflow

        mlflow.MlflowClient().log_dict(report["mlflow_run_id"], card, "serving.json")
    return report


def write_serving_card(p: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """The default configuration as evaluated, under the service's setting names: chunking (the
    index it seeds from, the chunks uploads get), retrieval with the floor the evaluation chose,
    generation limits; with that configuration's test-split metrics."""
    from mlstack.serve import file_sha256
    from mlstack.serving_card import write_card
    from rag_chatbot.evaluate import FUSION_KEYS
    from semantic_search.encoder import VARIANTS

    c, r, g = p["chunking"], p["retrieval"], p["generation"]
    floor = report["min_relevance"]
    config = {
        "chunk_tokens": c["default"],
        "overlap_tokens": c["overlap_tokens"],
        "corpus_index": str(index_dir(c["default"])),
        "encoder_variant": SERVED_VARIANT,
        "k": r["k"],
        "mode": r["mode"],
        "diversify": r["diversify"],
        "max_per_document": r.get("max_per_document"),
        "expand": r.get("expand"),
        "min_relevance": floor["value"],
        "context_tokens": r["context_tokens"],
        **{k: r[k] for k in FUSION_KEYS if k in r},
        "bm25_fields": r.get("bm25_fields") or {},
        "answer_tokens": g["answer_tokens"],
        "temperature": g["temperature"],
        "support_threshold": p["evaluate"]["support_threshold"],
    }
    encoder = ENCODER / VARIANTS[SERVED_VARIANT]
    evaluated = {
        "config_name": report["default"],
        "questions": report["questions"],
        "min_relevance": floor,
        "encoder_sha256": file_sha256(encoder),
        "generator": {k: g[k] for k in ("url", "model_dir", "backend", "tokenizer")},
    }
    return write_card(
        SERVING_CARD,
        project="rag-chatbot",
        config=config,
        params=p,
        metrics=report["configs"][report["default"]],
        evaluated=evaluated,
        mlflow_run_id=report.get("mlflow_run_id"),
    )
