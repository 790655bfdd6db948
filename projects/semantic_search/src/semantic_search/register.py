"""Register stage (ss_register): the INT8 encoder with its index and serving card becomes a version
of `semantic-search-encoder` in the MLflow registry, with its lineage, and goes through the
promotion gate (`mlstack.registry`) on the metric ss_evaluate measured for the system the service
runs (`hybrid_index` in reports/semantic_search/retrieval.json).

The held-out set is the known-item queries and the corpus they are searched in: a champion scored
on other queries or another corpus is re-scored from its registered encoder, index and retrieval
settings on this set, exactly as ss_evaluate scores the candidate. The decision goes to the
version's tags and models/semantic_search/promotion.json. A promoted version's encoder, index and
serving card are copied to models/semantic_search/champion/, which the service reads; after a
refusal that folder keeps the old champion, whatever the pipeline rebuilt beside it.
"""

import json
from pathlib import Path
from typing import Any

from semantic_search.pipeline import (
    CHAMPION,
    DATA,
    ENCODER,
    INDEX,
    REPORTS,
    SERVED_VARIANT,
    SERVING_CARD,
)

REGISTERED_NAME = "semantic-search-encoder"
SYSTEM = "hybrid_index"  # the one the service runs: its metrics are the serving card's
PROMOTION_JSON = Path("models/semantic_search/promotion.json")
ENCODER_FILES = ("model.int8.onnx", "tokenizer.json", "encoder.json")
DEPTH = 100  # ss_evaluate ranks 100 deep: recall@100 needs it


def heldout_hash(data: Path) -> str:
    from mlstack.train.promotion import tree_hash

    return tree_hash([data / "queries.jsonl", data / "corpus.jsonl"])


def data_hash(data: Path) -> str:
    from mlstack.train.promotion import tree_hash

    names = ("corpus.jsonl", "queries.jsonl", "calibration.json", "parity.json")
    return tree_hash([data / n for n in names if (data / n).exists()])


def score(encoder_dir: Path, index: Path, retrieval: dict[str, Any], queries: list[dict]) -> dict:
    """ss_evaluate's metrics of the hybrid system for one encoder, index and retrieval setting."""
    from semantic_search.encoder import Encoder
    from semantic_search.evaluate import evaluate_system
    from semantic_search.retrieval import Retriever
    from semantic_search.stores.lance import LanceStore

    encoder = Encoder(encoder_dir, variant=SERVED_VARIANT)
    retriever = Retriever(encoder, LanceStore(index, encoder.dim), **retrieval)

    def search(query: str) -> list[str]:
        return [h.document.id for h in retriever.search(query, k=DEPTH, mode="hybrid").hits]

    return evaluate_system(search, queries)[0]


def _champion_scorer(queries: list[dict], metric: str):
    from mlstack.registry import download

    def rescore(model_version: Any) -> float:
        # the champion's own files from the registry, with the retrieval settings it served
        files = download(model_version)
        card = json.loads((files / "serving.json").read_text())
        retrieval = {k: v for k, v in card["config"].items() if k != "encoder_variant"}
        return score(files / "encoder", files / "index", retrieval, queries)[metric]

    return rescore


def register(
    p: dict[str, Any],
    *,
    data: Path = DATA,
    encoder: Path = ENCODER,
    index: Path = INDEX,
    report: Path = REPORTS / "retrieval.json",
    card: Path = SERVING_CARD,
    out: Path = PROMOTION_JSON,
    champion: Path = CHAMPION,
) -> dict[str, Any]:
    from mlstack.registry import Candidate, install_champion, register_and_gate

    g = p["promotion"]
    evaluation = json.loads(report.read_text())
    metrics = evaluation["systems"][SYSTEM]
    files = {f"encoder/{n}": encoder / n for n in ENCODER_FILES}
    files |= {"index": index, "serving.json": card, "retrieval.json": report}
    candidate = Candidate(
        name=REGISTERED_NAME,
        files=files,
        # what the served system depends on: the encoder, how it was quantized and indexed,
        # and the retrieval settings it ran with
        params={k: p.get(k) for k in ("encoder", "quantize", "index", "retrieval")},
        data_hash=data_hash(data),
        heldout_hash=heldout_hash(data),
        metric=g["metric"],
        score=float(metrics[g["metric"]]),
        metrics=metrics,
        tags={"system": SYSTEM, "candidate": "int8+index"},
        evaluate_run_id=evaluation.get("mlflow_run_id"),
    )
    queries = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines()]
    result = register_and_gate(
        candidate,
        experiment="semantic-search",
        rule=g,
        promotion_json=out,
        evaluate_champion=_champion_scorer(queries, g["metric"]),
    )
    if result["decision"]["promoted"]:
        served = {f"encoder/{n}": encoder / n for n in ENCODER_FILES}
        install_champion(served | {"index": index, "serving.json": card}, champion)
    return result
