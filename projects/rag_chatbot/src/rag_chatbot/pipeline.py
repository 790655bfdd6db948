"""The DVC stages (see dvc.yaml): rag_index (one index per chunk size) -> rag_questions ->
rag_evaluate. Each reads params.yaml's `rag_chatbot` section and writes to reports/rag_chatbot/."""

import json
import shutil
from pathlib import Path
from typing import Any

DATA = Path("data/rag_chatbot")
REPORTS = Path("reports/rag_chatbot")
ENCODER = Path("models/semantic_search/encoder")


def index_dir(chunk_tokens: int) -> Path:
    return DATA / f"index-{chunk_tokens}"


def write_report(name: str, report: dict[str, Any]) -> dict[str, Any]:
    REPORTS.mkdir(parents=True, exist_ok=True)
    (REPORTS / name).write_text(json.dumps(report, indent=2, ensure_ascii=False))
    return report


def open_library(
    chunk_tokens: int, overlap_tokens: int, *, variant: str = "int8", threads: int = 0
):
    from rag_chatbot.library import Library
    from semantic_search.encoder import Encoder
    from semantic_search.stores import open_store

    encoder = Encoder(ENCODER, variant=variant, threads=threads)
    folder = index_dir(chunk_tokens)
    store = open_store(str(folder), encoder.dim)
    return Library(store, encoder, folder / "manifest.json", chunk_tokens=chunk_tokens,
                   overlap_tokens=overlap_tokens)  # fmt: skip


def index_stage(p: dict[str, Any]) -> dict[str, Any]:
    """The packaged Wikipedia summaries (minus the held-out articles), chunked at each size."""
    import time

    from tqdm import tqdm

    from rag_chatbot.corpus import as_sections, doc_id, split_articles

    c = p["corpus"]
    indexed, held_out = split_articles(c["seed"], c["held_out_articles"])
    report: dict[str, Any] = {"articles": len(indexed), "held_out": len(held_out), "indexes": {}}
    for size in p["chunking"]["sizes"]:
        shutil.rmtree(index_dir(size), ignore_errors=True)
        library = open_library(size, p["chunking"]["overlap_tokens"], threads=c["threads"])
        t0 = time.perf_counter()
        with tqdm(desc=f"index {size}-token chunks", unit="chunk") as bar:
            items = ((doc_id(a), a["title"], as_sections(a), a["topic"]) for a in indexed)
            chunks = library.add_many(items, on_batch=lambda n: bar.update(n - bar.n))
        docs = library.documents()
        report["indexes"][str(size)] = {
            "chunks": chunks, "seconds": round(time.perf_counter() - t0, 1),
            "chunks_per_article": round(chunks / len(docs), 3),
            "duplicates_dropped": sum(d.duplicates_dropped for d in docs),
        }  # fmt: skip
    return write_report("index.json", report)


def questions_stage(p: dict[str, Any]) -> dict[str, Any]:
    from rag_chatbot.corpus import build_questions, questions_report, split_articles, to_rows

    c, q = p["corpus"], p["questions"]
    indexed, held_out = split_articles(c["seed"], c["held_out_articles"])
    questions = build_questions(indexed, held_out, per_kind=q["per_kind"],
                                tune_share=q["tune_share"], seed=q["seed"])  # fmt: skip
    DATA.mkdir(parents=True, exist_ok=True)
    rows = to_rows(questions)
    (DATA / "questions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return write_report("questions.json", questions_report(questions))


def evaluate_stage(p: dict[str, Any]) -> dict[str, Any]:
    from rag_chatbot.evaluate import run_evaluation

    rows = [json.loads(line) for line in (DATA / "questions.jsonl").read_text().splitlines()]
    return write_report("evaluation.json", run_evaluation(p, rows))
