"""The DVC stages of the fine-tuning pipeline (see dvc.yaml):
llm_convert -> llm_data -> llm_sft -> llm_dpo -> llm_evaluate. Each reads params.yaml's
`llm_chat` section and writes its report to reports/llm_chat/."""

from pathlib import Path
from typing import Any

from mlstack.stage_report import write_stage_report

DATA = Path("data/llm_chat")
MODELS = Path("models/llm_chat")
REPORTS = Path("reports/llm_chat")
CHAMPION = MODELS / "champion"  # llm_register keeps the registry's champion here


def default_model_dir() -> Path:
    """What the chat service serves unless told: the fine-tuned champion once llm_register has
    installed one (its registered.json names the version), else the base model."""
    from mlstack.registry import installed_version

    return CHAMPION if installed_version(CHAMPION) else MODELS / "base"


def _write(name: str, report: dict[str, Any]) -> dict[str, Any]:
    # REPORTS read at each call: cli.py points it elsewhere in ranks other than 0
    return write_stage_report(REPORTS / name, report)


def data_stage(p: dict[str, Any]) -> dict[str, Any]:
    from llm_chat.finetune.data import build

    return _write("data.json", build(DATA, **p["data"]))


def _rows(name: str, limit: int | None = None) -> list[dict]:
    from llm_chat.finetune.data import read_jsonl

    return read_jsonl(DATA / f"{name}.jsonl")[:limit]


def sft_stage(p: dict[str, Any]) -> dict[str, Any]:
    from llm_chat.finetune.sft import train_sft

    s = p["sft"]
    report = train_sft(
        MODELS / "base",
        _rows("sft_train", s["train_examples"]),
        _rows("sft_eval", s["eval_examples"]),
        MODELS / "sft",
        s,
    )
    return _write("sft.json", report)


def dpo_stage(p: dict[str, Any]) -> dict[str, Any]:
    from llm_chat.finetune.dpo import train_dpo

    d = p["dpo"]
    report = train_dpo(
        MODELS / "sft",
        _rows("dpo_train", d["train_examples"]),
        _rows("dpo_eval", d["eval_examples"]),
        MODELS / "dpo",
        d,
    )
    return _write("dpo.json", report)


def evaluate_stage(p: dict[str, Any]) -> dict[str, Any]:
    """Base, SFT and DPO models on the same held-out articles; logged to MLflow (`llm-chat`)."""
    from llm_chat.finetune.evaluate import evaluate_model
    from mlstack.train.tracking import mlflow_run

    e = p["evaluate"]
    sft_eval, dpo_eval = _rows("sft_eval", e["examples"]), _rows("dpo_eval", e["examples"])
    report: dict[str, Any] = {"models": {}}
    from tqdm import tqdm

    for name in tqdm(("base", "sft", "dpo"), desc="evaluate models"):
        report["models"][name] = evaluate_model(MODELS / name, sft_eval, dpo_eval, e)
    with mlflow_run("llm-chat", run_name="evaluate", params={"model": p["model"], **e}) as run:
        import mlflow

        for name, metrics in report["models"].items():
            mlflow.log_metrics(
                {f"{name}.{k}": v for k, v in metrics.items() if isinstance(v, int | float)}
            )
        report["mlflow_run_id"] = run.info.run_id
    return _write("finetune.json", report)
