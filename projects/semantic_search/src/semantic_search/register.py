"""Register stage (ss_register): the INT8 encoder with its index and serving card becomes a version
of `semantic-search-encoder` in the MLflow registry, with its lineage, and goes through the
promotion gate (`mlstack.registry`) on the hybrid system the service runs.

The held-out set (params.yaml `semantic_search.promotion.heldout`) is the natural questions' tune
split, where the fusion weights were chosen (ss_natural_eval), or the known-item queries of
ss_evaluate; with the corpus they are searched in. A champion scored on another set is re-scored
from its registered encoder, index and retrieval settings on this one, exactly as the pipeline
scored the candidate. The decision goes to the version's tags and
models/semantic_search/promotion.json. A promoted version's encoder, index and serving card are
copied to models/semantic_search/champion/, which the service reads; after a refusal that folder
keeps the old champion, whatever the pipeline rebuilt beside it.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semantic_search.natural import NATURAL
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


def natural_tune_score(encoder_dir: Path, index: Path, retrieval: dict, questions: list) -> dict:
    """ss_natural_eval's metrics of the hybrid system on the natural questions' tune split."""
    from semantic_search.encoder import Encoder
    from semantic_search.natural_eval import evaluate, open_retriever

    encoder = Encoder(encoder_dir, variant=SERVED_VARIANT)
    return evaluate(open_retriever(encoder, index, retrieval), "hybrid", questions)["tune"]


@dataclass
class HeldOut:
    """The set the gate compares on: its content hash, the candidate's score as the pipeline
    wrote it, and how to score any encoder, index and retrieval setting on it."""

    hash: str
    metrics: dict[str, float]
    scorer: Callable[[Path, Path, dict], dict]


def held_out(kind: str, data: Path, reports: Path, natural: Path) -> HeldOut:
    """`known_items` (ss_evaluate's queries, written from the corpus) or `natural_tune` (the
    plain-language questions' tune split, where the fusion weights were chosen: ss_natural_eval;
    its test split stays for the report)."""
    from mlstack.train.promotion import tree_hash

    if kind == "natural_tune":
        from semantic_search.natural import load_questions

        questions = load_questions(natural)
        scored = json.loads((reports / "natural.json").read_text())["modes"]["hybrid"]["tune"]
        return HeldOut(
            tree_hash([natural, data / "corpus.jsonl"]),
            scored,
            lambda e, i, r: natural_tune_score(e, i, r, questions),
        )
    if kind != "known_items":
        raise ValueError(f"semantic_search.promotion.heldout: {kind!r} (known_items, natural_tune)")
    queries = [json.loads(line) for line in (data / "queries.jsonl").read_text().splitlines()]
    scored = json.loads((reports / "retrieval.json").read_text())["systems"][SYSTEM]
    return HeldOut(
        tree_hash([data / "queries.jsonl", data / "corpus.jsonl"]),
        scored,
        lambda e, i, r: score(e, i, r, queries),
    )


def _champion_scorer(heldout: HeldOut, metric: str):
    from mlstack.registry import download

    def rescore(model_version: Any) -> float:
        # the champion's own files from the registry, with the retrieval settings it served
        files = download(model_version)
        card = json.loads((files / "serving.json").read_text())
        retrieval = {k: v for k, v in card["config"].items() if k != "encoder_variant"}
        return heldout.scorer(files / "encoder", files / "index", retrieval)[metric]

    return rescore


def register(
    p: dict[str, Any],
    *,
    data: Path = DATA,
    encoder: Path = ENCODER,
    index: Path = INDEX,
    report: Path = REPORTS / "retrieval.json",
    natural: Path = NATURAL,
    card: Path = SERVING_CARD,
    out: Path = PROMOTION_JSON,
    champion: Path = CHAMPION,
) -> dict[str, Any]:
    from mlstack.registry import Candidate, register_and_gate, sync_champion

    g = p["promotion"]
    evaluation = json.loads(report.read_text())
    heldout = held_out(g.get("heldout", "known_items"), data, report.parent, natural)
    files = {f"encoder/{n}": encoder / n for n in ENCODER_FILES}
    files |= {"index": index, "serving.json": card, "retrieval.json": report}
    candidate = Candidate(
        name=REGISTERED_NAME,
        files=files,
        # what the served system depends on: the encoder, how it was quantized and indexed,
        # and the retrieval settings it ran with
        params={k: p.get(k) for k in ("encoder", "quantize", "index", "retrieval")},
        data_hash=data_hash(data),
        heldout_hash=heldout.hash,
        metric=g["metric"],
        score=float(heldout.metrics[g["metric"]]),
        metrics=evaluation["systems"][SYSTEM]
        | {f"{g.get('heldout', 'known_items')}.{k}": v for k, v in heldout.metrics.items()},
        tags={
            "system": SYSTEM,
            "candidate": "int8+index",
            "heldout": g.get("heldout", "known_items"),
        },
        evaluate_run_id=evaluation.get("mlflow_run_id"),
    )
    result = register_and_gate(
        candidate,
        experiment="semantic-search",
        rule=g,
        promotion_json=out,
        evaluate_champion=_champion_scorer(heldout, g["metric"]),
    )
    # the champion folder follows the registry: a promotion installs it, and a missing or
    # stale folder (a fresh checkout on a shared registry) is restored after a refusal too
    sync_champion(REGISTERED_NAME, champion)
    return result
