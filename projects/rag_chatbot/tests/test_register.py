"""rag_register on a real sqlite registry after the real index -> questions -> evaluate stages (a
few packaged articles, the tiny encoder, the fake generator): the evaluated configuration is
promoted with its lineage, one whose answers got worse is refused, and a champion scored on
other questions is refused, not compared, since a configuration cannot be re-scored from its
card."""

import json
import shutil
from pathlib import Path

import pytest

from mlstack.train.promotion import params_hash
from rag_chatbot.register import REGISTERED_NAME, register
from rag_chatbot.settings import Settings

ARTICLES = 30
METRIC = "generation.answer_correctness"


def params(url: str, per_kind: int = 2) -> dict:
    return {
        "corpus": {"held_out_articles": 6, "seed": 11, "threads": 1},
        "chunking": {"sizes": [40], "default": 40, "overlap_tokens": 0},
        "questions": {"per_kind": per_kind, "tune_share": 0.5, "seed": 5},
        "retrieval": {
            "k": 3,
            "mode": "hybrid",
            "diversify": None,
            "min_relevance": -1.0,
            "context_tokens": 1024,
        },
        "generation": {
            "answer_tokens": 32,
            "temperature": 0.0,
            "url": url,
            "model_dir": "unused",
            "backend": "native",
            "tokenizer": "models/semantic_search/encoder",
            "concurrency": 1,
        },
        "evaluate": {
            "threads": 1,
            "support_threshold": 0.5,
            "generate_configs": ["hybrid/40"],
            "generate_per_kind": 1,
            "generate_unanswerable": 1,
        },
        "promotion": {"metric": METRIC, "min_gain": 0.02},
    }


@pytest.fixture()
def repo(encoder_dir, tmp_path, monkeypatch):
    import rag_chatbot.corpus

    shutil.copytree(encoder_dir, tmp_path / "models/semantic_search/encoder")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    split = rag_chatbot.corpus.split_articles  # the stages' own split, cut down to a few articles
    monkeypatch.setattr(
        rag_chatbot.corpus,
        "split_articles",
        lambda seed, held_out: tuple(x[:ARTICLES] for x in split(seed, held_out)),
    )
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_pipeline(p: dict, *, index: bool = True) -> dict:
    from rag_chatbot.pipeline import evaluate_stage, index_stage, questions_stage

    if index:
        index_stage(p)
    questions_stage(p)
    return evaluate_stage(p)


def test_promotes_then_refuses_worse_answers(repo, reset_llm):
    import mlflow

    p = params(reset_llm.url)
    evaluation = run_pipeline(p)
    first = register(p)
    decision = first["decision"]
    assert decision["promoted"] and decision["alias"] == "champion"
    generated = evaluation["configs"]["hybrid/40"]["generation"]
    assert decision["score"] == generated["answer_correctness"] > 0
    assert json.loads(Path("models/rag_chatbot/promotion.json").read_text()) == first

    client = mlflow.MlflowClient()
    tags = client.get_model_version(REGISTERED_NAME, decision["version"]).tags
    card = json.loads(Path("models/rag_chatbot/serving.json").read_text())
    lineage = {"config": card["config"], "card_params_hash": card["params_hash"]}
    assert tags["lineage.params_hash"] == params_hash(lineage)
    assert tags["lineage.data_hash"] == first["data_hash"] and tags["lineage.git_commit"]
    assert float(tags["metrics.generation.faithfulness"]) == generated["faithfulness"]
    assert tags["evaluate_run_id"] == evaluation["mlflow_run_id"]
    registered = mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{REGISTERED_NAME}/1")
    assert json.loads((Path(registered) / "serving.json").read_text()) == card

    served = Settings().serving_card  # the service's default card: the promoted one
    assert served == Path("models/rag_chatbot/champion/serving.json")
    assert json.loads(served.read_text()) == card

    reset_llm.reply = "Zebras are striped horses."  # a generator that stopped answering well
    p["retrieval"]["k"] = 2  # and a changed configuration: the pipeline writes a new card
    run_pipeline(p, index=False)
    assert json.loads(Path("models/rag_chatbot/serving.json").read_text())["config"]["k"] == 2
    worse = register(p)["decision"]
    assert worse["score"] < decision["score"] and not worse["promoted"]
    assert worse["alias"] == "challenger" and worse["reason"].startswith("refused:")
    assert (
        client.get_model_version(REGISTERED_NAME, worse["version"]).tags["promotion.decision"]
        == "challenger"
    )
    champion = client.get_model_version_by_alias(REGISTERED_NAME, "champion")
    assert str(champion.version) == decision["version"]
    assert json.loads(served.read_text()) == card  # the service still runs the champion's card


def test_champion_on_other_questions_is_refused_not_compared(repo, reset_llm):
    run_pipeline(params(reset_llm.url))
    first = register(params(reset_llm.url))["decision"]
    more = params(reset_llm.url, per_kind=3)  # another question set
    run_pipeline(more, index=False)
    second = register(more)["decision"]
    assert second["heldout_hash"] != first["heldout_hash"]
    assert not second["promoted"] and second["champion_score"] is None
    assert "no evaluator" in second["reason"] and first["heldout_hash"][:12] in second["reason"]
