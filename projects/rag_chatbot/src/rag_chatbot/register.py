"""Register stage (rag_register): the configuration rag_evaluate evaluated, its serving card
(models/rag_chatbot/serving.json, as the pipeline wrote it), becomes a version of
`rag-chatbot-config` in the MLflow registry with its lineage and goes through the promotion
gate (`mlstack.registry`) on the evaluation's answer metric for that configuration (params.yaml
`rag_chatbot.promotion`, a path into reports/rag_chatbot/evaluation.json's `configs[default]`,
e.g. generation.answer_correctness).

The held-out set is the test split's questions and how answers are scored (the generated sample's
size, the support threshold). A champion scored on another set is NOT re-scored: that would be a
generation run of its whole configuration (its own chunking, index and generator), which this
stage cannot reproduce from a card. The gate refuses and says so, as it does for any model without
an evaluator, rather than compare scores from two different sets. The decision goes to the
version's tags and models/rag_chatbot/promotion.json. A promoted card is copied to
models/rag_chatbot/champion/serving.json, which the service runs; after a refusal that copy keeps
the champion's configuration, whatever rag_evaluate wrote since.
"""

import json
from pathlib import Path
from typing import Any

from rag_chatbot.pipeline import CHAMPION, DATA, REPORTS, SERVING_CARD, index_dir

REGISTERED_NAME = "rag-chatbot-config"
PROMOTION_JSON = Path("models/rag_chatbot/promotion.json")
# rag_evaluate's settings that decide what a score is measured on
PROTOCOL = ("generate_per_kind", "generate_unanswerable", "support_threshold")


def heldout_hash(questions: Path, evaluate: dict[str, Any]) -> str:
    from mlstack.train.promotion import params_hash

    rows = [json.loads(line) for line in questions.read_text().splitlines()]
    test = [q for q in rows if q["split"] == "test"]
    return params_hash({"test": test, "protocol": {k: evaluate.get(k) for k in PROTOCOL}})


def flat_metrics(result: dict[str, Any]) -> dict[str, float]:
    """`{"retrieval": {"recall@5": ..}, "generation": {..}}` -> `{"retrieval.recall@5": ..}`."""
    out = {}
    for part in ("retrieval", "generation"):
        for k, v in (result.get(part) or {}).items():
            if isinstance(v, int | float):
                out[f"{part}.{k}"] = float(v)
    return out


def register(
    p: dict[str, Any],
    *,
    questions: Path = DATA / "questions.jsonl",
    report: Path = REPORTS / "evaluation.json",
    card: Path = SERVING_CARD,
    out: Path = PROMOTION_JSON,
    champion: Path = CHAMPION,
) -> dict[str, Any]:
    from mlstack.registry import Candidate, register_and_gate, sync_champion
    from mlstack.train.promotion import tree_hash

    g = p["promotion"]
    evaluation = json.loads(report.read_text())
    served = json.loads(card.read_text())
    default = evaluation["default"]
    metrics = flat_metrics(evaluation["configs"][default])
    if g["metric"] not in metrics:
        raise SystemExit(
            f"{report}: {default} has no {g['metric']} (is it in evaluate.generate_configs?); "
            f"measured: {', '.join(sorted(metrics))}"
        )
    index = index_dir(p["chunking"]["default"])
    candidate = Candidate(
        name=REGISTERED_NAME,
        files={"serving.json": card, "evaluation.json": report},
        # the card's configuration is what is served; its params hash covers how it was made
        params={"config": served["config"], "card_params_hash": served["params_hash"]},
        data_hash=tree_hash([questions, index] if index.exists() else [questions]),
        heldout_hash=heldout_hash(questions, p["evaluate"]),
        metric=g["metric"],
        score=metrics[g["metric"]],
        metrics=metrics,
        tags={
            "candidate": default,
            "encoder_sha256": served["evaluated"].get("encoder_sha256", ""),
        },
        evaluate_run_id=evaluation.get("mlflow_run_id"),
    )
    result = register_and_gate(candidate, experiment="rag-chatbot", rule=g, promotion_json=out)
    # the champion folder follows the registry: a promotion installs it, and a missing or
    # stale folder (a fresh checkout on a shared registry) is restored after a refusal too
    sync_champion(REGISTERED_NAME, champion)
    return result
