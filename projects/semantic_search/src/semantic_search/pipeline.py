"""The DVC stages: prepare -> export encoder -> quantize -> embed -> index -> evaluate.
Paths are the repository's conventions; parameters come from params.yaml `semantic_search`."""

import json
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from semantic_search.corpus import prepare
from semantic_search.encoder import Encoder
from semantic_search.evaluate import evaluate_system, latency_summary
from semantic_search.indexing import document_texts, index_documents
from semantic_search.ingest import read_jsonl
from semantic_search.retrieval import Retriever, SearchMode

log = logging.getLogger(__name__)
DATA = Path("data/semantic_search")
ENCODER = Path("models/semantic_search/encoder")
INDEX = DATA / "index"
REPORTS = Path("reports/semantic_search")
# What the service runs (settings.Settings.serving_card): beside the encoder, in the models folder
# deployments mount, and outside `encoder/`, which rag_index depends on as a whole.
SERVING_CARD = Path("models/semantic_search/serving.json")
# What ss_register installs when the gate promotes: the service's default encoder, index and card.
CHAMPION = Path("models/semantic_search/champion")
SERVED_VARIANT = "int8"  # the index holds INT8 embeddings: queries are encoded by the same model


def _write(path: Path, report: dict[str, Any]) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    return report


def prepare_stage(p: dict[str, Any]) -> dict[str, Any]:
    return _write(REPORTS / "data_report.json", prepare(DATA, **p["data"]))


def export_stage(p: dict[str, Any]) -> dict[str, Any]:
    from semantic_search.export import build_encoder

    build_encoder(p["encoder"]["model"], ENCODER)
    return json.loads((ENCODER / "encoder.json").read_text())


def quantize_stage(p: dict[str, Any]) -> dict[str, Any]:
    """Guided INT8 on the calibration sentences, then parity of both variants against
    sentence-transformers on the held-out sentences; fails the stage below the floor."""
    from semantic_search.export import embedding_parity, quantize_encoder

    q = p["quantize"]
    calibration = json.loads((DATA / "calibration.json").read_text())
    report = {
        "int8": quantize_encoder(
            ENCODER, calibration, min_cosine=q["calibration_min_cosine"], threads=q["threads"]
        )
    }
    parity_texts = json.loads((DATA / "parity.json").read_text())
    report["parity"] = embedding_parity(
        p["encoder"]["model"], ENCODER, parity_texts, threads=q["threads"]
    )
    report["parity"]["required_min_cosine"] = q["min_cosine"]
    _write(REPORTS / "encoder.json", report)
    worst = min(report["parity"][v]["min_cosine"] for v in ("fp32", "int8"))
    if worst < q["min_cosine"]:
        raise SystemExit(f"parity failed: worst cosine {worst:.4f} < {q['min_cosine']}")
    return report["parity"]


def embed_stage(variant: str, p: dict[str, Any]) -> Path:
    """The corpus's vectors, every document in one length-sorted pass: sorted within chunks of
    256 documents, the batches carried 15% more tokens (pads) and the stage took ~15% longer."""
    encoder = Encoder(ENCODER, variant=variant, threads=p["embed"]["threads"], bulk=True)
    docs = list(read_jsonl(DATA / "corpus.jsonl"))
    tokens = encoder.tokenize(document_texts(docs))
    with tqdm(total=len(docs), desc=f"embed {variant}", unit="doc") as bar:
        vectors = encoder.encode_tokenized(
            tokens, batch_size=p["embed"]["batch_size"], on_batch=bar.update
        )
    out = DATA / f"embeddings.{variant}.npy"
    np.save(out, vectors)
    return out


def index_stage(p: dict[str, Any]) -> dict[str, Any]:
    import shutil

    from lancedb.index import HnswSq

    from semantic_search.stores.lance import LanceStore

    shutil.rmtree(INDEX, ignore_errors=True)
    encoder = Encoder(ENCODER, variant="int8")
    store = LanceStore(INDEX, encoder.dim)
    docs = list(read_jsonl(DATA / "corpus.jsonl"))
    vectors = np.load(DATA / "embeddings.int8.npy")
    t0 = time.perf_counter()
    index_documents(store, encoder, docs, vectors=vectors, batch_size=2048)
    store.build_vector_index(HnswSq(distance_type="cosine", **p["index"]["hnsw"]))
    return _write(
        REPORTS / "index.json",
        {"documents": store.count(), "build_seconds": round(time.perf_counter() - t0, 2)},
    )


def _exact_search(encoder: Encoder, vectors: np.ndarray, ids: list[str], depth: int):
    def search(query: str) -> list[str]:
        scores = vectors @ encoder.encode([query])[0]
        return [ids[i] for i in np.argsort(-scores)[:depth]]

    return search


def _latency(retriever: Retriever, queries: list[str], mode: SearchMode) -> dict[str, Any]:
    """p50/p95/p99 of `Retriever.search` from the query text ("total") and from its embedding
    ("search": what the service runs after its micro-batched encoder)."""
    vectors = retriever.encoder.encode(queries)
    samples: dict[str, list[float]] = {"total": [], "search": []}
    for warm_up in (True, False):
        for query, vector in zip(queries[:20] if warm_up else queries, vectors, strict=False):
            for part, given in (("total", None), ("search", vector)):
                t0 = time.perf_counter()
                retriever.search(query, k=10, mode=mode, query_vector=given)
                if not warm_up:
                    samples[part].append((time.perf_counter() - t0) * 1000)
    return {part: latency_summary(times) for part, times in samples.items()}


def evaluate_stage(p: dict[str, Any]) -> dict[str, Any]:
    """nDCG@10, MRR@10, Recall@1/10/100 per system, and search latency through the Python API."""
    from mlstack.train.tracking import mlflow_run
    from semantic_search.stores.lance import LanceStore

    e = p["evaluate"]
    queries = [json.loads(line) for line in (DATA / "queries.jsonl").read_text().splitlines()]
    ids = [d.id for d in read_jsonl(DATA / "corpus.jsonl")]
    depth = 100
    systems: dict[str, Any] = {}
    for variant in ("fp32", "int8"):
        enc = Encoder(ENCODER, variant=variant, threads=e["threads"])
        vectors = np.load(DATA / f"embeddings.{variant}.npy")
        systems[f"dense_{variant}_exact"] = _exact_search(enc, vectors, ids, depth)
    encoder = Encoder(ENCODER, variant=SERVED_VARIANT, threads=e["threads"])
    retriever = Retriever(encoder, LanceStore(INDEX, encoder.dim), **p["retrieval"])
    for mode in SearchMode:
        systems[f"{mode}_index"] = lambda q, m=mode: [
            h.document.id for h in retriever.search(q, k=depth, mode=m).hits
        ]
    results: dict[str, Any] = {"queries": len(queries), "systems": {}}
    for name, search in systems.items():
        metrics, _ = evaluate_system(search, tqdm(queries, desc=name, leave=False))
        results["systems"][name] = metrics
        log.info("%s %s", name, metrics)
    fp32, int8 = results["systems"]["dense_fp32_exact"], results["systems"]["dense_int8_exact"]
    results["int8_vs_fp32_ndcg_relative"] = round(int8["ndcg@10"] / fp32["ndcg@10"] - 1, 4)

    sample = [q["query"] for q in queries[: e["latency_queries"]]]
    latency = {str(mode): _latency(retriever, sample, mode) for mode in SearchMode}
    results["latency_ms"] = {"k": 10, "threads": e["threads"], **latency}

    with mlflow_run(
        "semantic-search",
        run_name="evaluate",
        params={"retrieval": p["retrieval"], "encoder": p["encoder"]["model"]},
    ) as run:
        import mlflow

        for name, metrics in results["systems"].items():
            mlflow.log_metrics({f"{name}.{k.replace('@', '_at_')}": v for k, v in metrics.items()})
        for mode, parts in latency.items():
            for part, lat in parts.items():
                mlflow.log_metrics({f"latency_{mode}_{part}_{k}_ms": v for k, v in lat.items()})
        mlflow.log_artifact(str(REPORTS / "encoder.json"))
        results["mlflow_run_id"] = run.info.run_id
        mlflow.log_dict(write_serving_card(p, results), "serving.json")
    return _write(REPORTS / "retrieval.json", results)


def write_serving_card(p: dict[str, Any], results: dict[str, Any]) -> dict[str, Any]:
    """The configuration the `*_index` systems ran with, for the service to run as evaluated:
    the retrieval parameters as its settings of the same names, the encoder variant, the
    checksum of the encoder file it was evaluated with, and the hybrid system's metrics."""
    from mlstack.serve import file_sha256
    from mlstack.serving_card import write_card
    from semantic_search.encoder import VARIANTS

    model = ENCODER / VARIANTS[SERVED_VARIANT]
    evaluated = {
        "index": str(INDEX),
        "encoder": str(model),
        "encoder_sha256": file_sha256(model),
        "queries": results["queries"],
        "system": "hybrid_index",
    }
    return write_card(
        SERVING_CARD,
        project="semantic-search",
        config={"encoder_variant": SERVED_VARIANT, **p["retrieval"]},
        params=p,
        metrics=results["systems"]["hybrid_index"],
        evaluated=evaluated,
        mlflow_run_id=results.get("mlflow_run_id"),
    )
