"""Register stage (llm_register): the fine-tuned models (SFT and DPO) become versions of
`llm-chat-finetuned` in the MLflow registry with their lineage; the better of the two on the metric
llm_evaluate measured (reports/llm_chat/finetune.json, params.yaml `llm_chat.promotion`) goes
through the promotion gate (`mlstack.registry`) against the registry's champion.

The held-out set is the evaluation's questions and preference pairs together with how they are
scored (answer and token limits): a champion scored otherwise is re-scored from its registered
files by llm_evaluate's own `evaluate_model`. The decision goes to the versions' tags and
models/llm_chat/promotion.json.

A version holds the merged model folder and, in `openvino-int8/`, its export for the default
backend (llm_export_openvino_tuned). models/llm_chat/champion follows the registry's champion
(`sync_champion`): the chat service serves it by default once it exists.
"""

import json
from pathlib import Path
from typing import Any

from llm_chat.pipeline import CHAMPION, DATA, MODELS, REPORTS

REGISTERED_NAME = "llm-chat-finetuned"
PROMOTION_JSON = MODELS / "promotion.json"
# DPO first: the RAG evaluation generates with it, so it wins a tie
CANDIDATES = ("dpo", "sft")
# evaluate_model's settings that change a score: part of what "the same held-out set" means
PROTOCOL = ("examples", "generate", "answer_tokens", "max_tokens")


def _eval_rows(data: Path, examples: int) -> tuple[list[dict], list[dict]]:
    from llm_chat.finetune.data import read_jsonl

    return (
        read_jsonl(data / "sft_eval.jsonl")[:examples],
        read_jsonl(data / "dpo_eval.jsonl")[:examples],
    )


def heldout_hash(data: Path, evaluate: dict[str, Any]) -> str:
    from mlstack.train.promotion import params_hash

    sft_eval, dpo_eval = _eval_rows(data, evaluate["examples"])
    protocol = {k: evaluate.get(k) for k in PROTOCOL}
    return params_hash({"sft_eval": sft_eval, "dpo_eval": dpo_eval, "protocol": protocol})


def _champion_scorer(data: Path, evaluate: dict[str, Any], metric: str):
    def rescore(model_version: Any) -> float:
        from llm_chat.finetune.evaluate import evaluate_model
        from mlstack.registry import download

        sft_eval, dpo_eval = _eval_rows(data, evaluate["examples"])
        return float(evaluate_model(download(model_version), sft_eval, dpo_eval, evaluate)[metric])

    return rescore


def register(
    p: dict[str, Any],
    *,
    data: Path = DATA,
    models: Path = MODELS,
    report: Path = REPORTS / "finetune.json",
    out: Path = PROMOTION_JSON,
    champion: Path = CHAMPION,
) -> dict[str, Any]:
    from mlstack.registry import Candidate, register_and_gate, sync_champion
    from mlstack.train.promotion import tree_hash

    g, e = p["promotion"], p["evaluate"]
    evaluation = json.loads(report.read_text())
    heldout, data_hash = heldout_hash(data, e), tree_hash([data])
    candidates = []
    for name in CANDIDATES:
        scores = evaluation["models"][name].items()
        metrics = {k: float(v) for k, v in scores if isinstance(v, int | float)}
        # DPO starts from SFT: its lineage includes both recipes
        recipe = {"sft": p["sft"]} | ({"dpo": p["dpo"]} if name == "dpo" else {})
        candidates.append(
            Candidate(
                name=REGISTERED_NAME,
                files={"": models / name, "openvino-int8": models / f"openvino-{name}-int8"},
                params={"model": p["model"], "data": p["data"], **recipe},
                data_hash=data_hash,
                heldout_hash=heldout,
                metric=g["metric"],
                score=metrics[g["metric"]],
                metrics=metrics,
                tags={"candidate": name},
                evaluate_run_id=evaluation.get("mlflow_run_id"),
            )
        )
    result = register_and_gate(
        candidates,
        experiment="llm-chat",
        rule=g,
        promotion_json=out,
        evaluate_champion=_champion_scorer(data, e, g["metric"]),
    )
    sync_champion(REGISTERED_NAME, champion)  # installed after a promotion, restored if missing
    return result
