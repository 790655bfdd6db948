"""llm_register on a real sqlite registry after the real llm_evaluate stage on the tiny model: the
better fine-tuned model is promoted with its lineage, the other tagged as not a candidate, the same
models again are refused, and a champion scored under another protocol is re-scored from its
registered files."""

import json
import shutil
from pathlib import Path

import pytest

from llm_chat.finetune.data import build
from llm_chat.pipeline import evaluate_stage
from llm_chat.register import REGISTERED_NAME, register
from mlstack.train.promotion import params_hash

EVALUATE = {"examples": 4, "generate": 2, "answer_tokens": 6, "batch_size": 4, "max_tokens": 64}


def params(**evaluate) -> dict:
    return {
        "model": "tiny",
        "data": {"train_articles": 8, "eval_articles": 4, "seed": 1},
        "sft": {"lr": 0.001},
        "dpo": {"beta": 0.1},
        "evaluate": EVALUATE | evaluate,
        "promotion": {"metric": "token_f1", "min_gain": 0.01},
    }


@pytest.fixture()
def repo(tiny_llama, tiny_ov, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    build(tmp_path / "data/llm_chat", **params()["data"])
    for name in ("base", "sft", "dpo"):  # the stages' folders; training is not under test here
        shutil.copytree(tiny_llama, tmp_path / "models/llm_chat" / name)
    for name in ("sft", "dpo"):  # and their exports (llm_export_openvino_tuned)
        shutil.copytree(tiny_ov, tmp_path / f"models/llm_chat/openvino-{name}-int8")
    evaluate_stage(params())
    return tmp_path


def test_promotes_the_better_model_then_refuses(repo):
    import mlflow

    first = register(params())
    decision = first["decision"]
    assert decision["promoted"] and decision["reason"] == "no champion"
    assert first["candidate"] == "dpo"  # equal scores: the one RAG generates with
    evaluated = json.loads(Path("reports/llm_chat/finetune.json").read_text())
    assert decision["score"] == evaluated["models"]["dpo"]["token_f1"]
    assert json.loads(Path("models/llm_chat/promotion.json").read_text()) == first

    client = mlflow.MlflowClient()
    tags = client.get_model_version(REGISTERED_NAME, decision["version"]).tags
    p = params()
    lineage = {"model": "tiny", "data": p["data"], "sft": p["sft"], "dpo": p["dpo"]}
    assert tags["lineage.params_hash"] == params_hash(lineage)
    assert tags["lineage.data_hash"] == first["data_hash"] and tags["lineage.git_commit"]
    assert float(tags["metrics.perplexity"]) == evaluated["models"]["dpo"]["perplexity"]
    skipped = client.get_model_version(REGISTERED_NAME, first["versions"]["sft"]).tags
    assert skipped["promotion.decision"] == "not a candidate"
    champion = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{REGISTERED_NAME}@champion"
    )
    assert (Path(champion) / "config.json").exists()  # a model folder as from_pretrained loads it

    again = register(params())["decision"]
    assert not again["promoted"] and again["champion_scored"] == "recorded"
    assert (
        client.get_model_version(REGISTERED_NAME, again["version"]).tags["promotion.reason"]
        == again["reason"]
    )


def test_champion_scored_under_another_protocol_is_rescored(repo):
    first = register(params())["decision"]
    longer = params(answer_tokens=12)  # longer answers: token F1 is not comparable
    evaluate_stage(longer)
    second = register(longer)["decision"]
    assert second["heldout_hash"] != first["heldout_hash"]
    assert second["champion_scored"] == "re-evaluated"
    # the same weights, greedy decoding: llm_evaluate's number, reproduced from the registry
    assert second["champion_score"] == second["score"] and not second["promoted"]


def test_the_service_serves_the_champion_the_gate_installed(repo):
    """Before any promotion the service serves the base model; llm_register installs the champion
    (the merged model and its OpenVINO export) and the service then serves it by default, on
    the default backend, saying which registered version it is; a deleted champion folder is
    restored from the registry on a refused run."""
    import httpx

    from llm_chat.backends import resolve_kind
    from llm_chat.service import Settings, build_app
    from mlstack.testing import live_server

    assert Settings().model_dir == Path("models/llm_chat/base")
    decision = register(params())["decision"]
    champion = Path("models/llm_chat/champion")
    assert json.loads((champion / "registered.json").read_text()) == {
        "registered_model": REGISTERED_NAME,
        "version": decision["version"],
    }
    assert (champion / "openvino-int8" / "openvino_model.xml").exists()
    settings = Settings(context_tokens=256, ov_precision="f32", monitor_dir=repo / "monitor")
    assert settings.model_dir == champion and resolve_kind("auto", champion) == "openvino"
    with live_server(build_app(settings)) as url:
        (model,) = httpx.get(url + "/v1/models").json()["data"]
        body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}
        chat = httpx.post(url + "/v1/chat/completions", json=body, timeout=60)
    assert model["version"] == decision["version"] and model["backend"].startswith("openvino")
    assert model["registered_model"] == REGISTERED_NAME and chat.status_code == 200

    shutil.rmtree(champion)
    assert not register(params())["decision"]["promoted"]
    assert json.loads((champion / "registered.json").read_text())["version"] == decision["version"]
