"""ss_register on a real sqlite registry, after the real embed -> index -> evaluate stages on a
tiny encoder and corpus: a first version is promoted with its lineage, the same system again is
refused (no gain), and a champion scored on other queries is re-scored from its registered files
on the new ones, which reproduces what ss_evaluate measured."""

import contextlib
import json
import shutil
from pathlib import Path

import pytest

from mlstack.serving_card import apply_card
from mlstack.train.promotion import git_commit, params_hash
from semantic_search.pipeline import embed_stage, evaluate_stage, index_stage
from semantic_search.register import REGISTERED_NAME, register
from semantic_search.settings import Settings

TINY = {
    "data": {},
    "encoder": {"model": "tiny"},
    "embed": {"batch_size": 8, "threads": 1},
    "index": {"hnsw": {"m": 8, "ef_construction": 50}},
    "evaluate": {"threads": 1, "latency_queries": 3},
    "retrieval": {"rrf_k": 60, "dense_weight": 1.0, "bm25_weight": 1.0, "candidates": 50},
    "promotion": {"metric": "mrr@10", "min_gain": 0.005},
}


def write_queries(root: Path, corpus, step: int) -> None:
    queries = [{"query": " ".join(d.text.split()[:8]), "relevant": d.id} for d in corpus[::step]]
    lines = "".join(json.dumps(q) + "\n" for q in queries)
    (root / "data/semantic_search/queries.jsonl").write_text(lines)


@pytest.fixture()
def repo(encoder_dir, corpus, tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    monkeypatch.chdir(tmp_path)
    shutil.copytree(encoder_dir, tmp_path / "models/semantic_search/encoder")
    data = tmp_path / "data/semantic_search"
    data.mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(d.model_dump_json() + "\n" for d in corpus))
    write_queries(tmp_path, corpus, 6)
    (tmp_path / "reports/semantic_search").mkdir(parents=True)
    (tmp_path / "reports/semantic_search/encoder.json").write_text("{}")  # ss_quantize's report
    with contextlib.chdir(tmp_path):
        for variant in ("fp32", "int8"):
            embed_stage(variant, TINY)
        index_stage(TINY)
        evaluate_stage(TINY)
    return tmp_path


def test_promotes_then_refuses_with_lineage(repo):
    import mlflow

    first = register(TINY)
    decision = first["decision"]
    assert decision["promoted"] and decision["reason"] == "no champion"
    evaluated = json.loads(Path("reports/semantic_search/retrieval.json").read_text())
    assert decision["score"] == evaluated["systems"]["hybrid_index"]["mrr@10"]
    on_disk = json.loads(Path("models/semantic_search/promotion.json").read_text())
    assert on_disk["decision"] == decision

    client = mlflow.MlflowClient()
    tags = client.get_model_version(REGISTERED_NAME, decision["version"]).tags
    assert tags["lineage.git_commit"] == git_commit(Path(__file__).parent)
    assert tags["lineage.data_hash"] == first["data_hash"] and len(first["data_hash"]) == 64
    lineage = {
        "encoder": TINY["encoder"],
        "quantize": None,
        "index": TINY["index"],
        "retrieval": TINY["retrieval"],
    }  # what the served system depends on
    assert tags["lineage.params_hash"] == params_hash(lineage)
    assert float(tags["metrics.recall_at_10"]) == evaluated["systems"]["hybrid_index"]["recall@10"]
    assert tags["evaluate_run_id"] == evaluated["mlflow_run_id"]
    assert tags["promotion.decision"] == "champion"
    uri = f"models:/{REGISTERED_NAME}@champion"
    files = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
    assert {"encoder", "index", "serving.json"} <= {p.name for p in files.iterdir()}

    # the promoted files are what the service loads by default
    champion = Path("models/semantic_search/champion")
    assert (champion / "encoder/model.int8.onnx").read_bytes() == Path(
        "models/semantic_search/encoder/model.int8.onnx"
    ).read_bytes()
    assert (champion / "index").is_dir()
    served = Settings()
    assert served.encoder_dir == champion / "encoder" and served.corpus_index == champion / "index"
    assert served.serving_card == champion / "serving.json"

    # a rebuilt card (other fusion weights) on a system that scores no better: refused, and the
    # service keeps the champion's card, not the pipeline's new one
    card = Path("models/semantic_search/serving.json")
    rebuilt = json.loads(card.read_text())
    rebuilt["config"]["bm25_weight"] = 0.25
    card.write_text(json.dumps(rebuilt))
    again = register(TINY)["decision"]  # no gain: the champion stays
    assert not again["promoted"] and again["alias"] == "challenger"
    applied, _ = apply_card(Settings(), Settings().serving_card)
    assert applied.bm25_weight == TINY["retrieval"]["bm25_weight"] != 0.25
    marker = json.loads((champion / "registered.json").read_text())
    assert marker == {"registered_model": REGISTERED_NAME, "version": decision["version"]}

    # a fresh checkout on the same registry has no champion folder: a refused run restores it
    # from the registry's champion, not from the pipeline's files
    shutil.rmtree(champion)
    assert not register(TINY)["decision"]["promoted"]
    assert json.loads((champion / "serving.json").read_text())["config"]["bm25_weight"] == 1.0
    assert json.loads((champion / "registered.json").read_text()) == marker
    assert again["champion_scored"] == "recorded" and "not more than min_gain" in again["reason"]
    refused = client.get_model_version(REGISTERED_NAME, again["version"]).tags
    assert refused["promotion.reason"] == again["reason"]
    champion = client.get_model_version_by_alias(REGISTERED_NAME, "champion")
    assert str(champion.version) == decision["version"]


def test_champion_on_other_queries_is_rescored_from_the_registry(repo, corpus):
    first = register(TINY)["decision"]
    write_queries(repo, corpus, 4)  # another held-out set: the recorded score says nothing of it
    evaluate_stage(TINY)
    second = register(TINY)["decision"]
    assert second["heldout_hash"] != first["heldout_hash"]
    assert second["champion_scored"] == "re-evaluated"
    # same encoder, index and settings: re-scoring reproduces ss_evaluate's number exactly
    assert second["champion_score"] == second["score"]
    assert not second["promoted"] and "gain +0.0000" in second["reason"]


def write_natural(root: Path, corpus) -> None:
    """Questions in the natural set's format on the test corpus: a few words of each article,
    asked; half tune, half test."""
    path = root / "projects/rag_chatbot/data/natural_questions.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [
        {
            "id": f"q{i}",
            "question": " ".join(d.text.split()[2:9]) + "?",
            "answer_title": d.id,
            "answerable": True,
            "split": ("tune", "test")[i % 2],
        }
        for i, d in enumerate(corpus[::3])
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_gate_on_the_natural_tune_split_rescores_a_known_item_champion(repo, corpus):
    from semantic_search.natural_eval import natural_stage

    write_natural(repo, corpus)
    natural = natural_stage(TINY)
    tune = natural["modes"]["hybrid"]["tune"]
    first = register(TINY)["decision"]  # champion on the known-item queries
    on_tune = {
        **TINY,
        "promotion": {"heldout": "natural_tune", "metric": "mrr@10", "min_gain": 0.0125},
    }
    second = register(on_tune)
    decision = second["decision"]
    assert decision["heldout_hash"] != first["heldout_hash"] and decision["score"] == tune["mrr@10"]
    # the champion's own registered files, re-scored on the tune split: the same system
    assert decision["champion_scored"] == "re-evaluated"
    assert decision["champion_score"] == decision["score"] and not decision["promoted"]

    # BM25 alone: the tiny encoder's dense ranking is noise, so on these word-overlap questions
    # it wins by far more than the margin, and is what the service then serves
    bm25 = {**on_tune, "retrieval": {**TINY["retrieval"], "dense_weight": 0.0}}
    with contextlib.chdir(repo):
        evaluate_stage(bm25)
        bm25_tune = natural_stage(bm25)["modes"]["hybrid"]["tune"]["mrr@10"]
    third = register(bm25)["decision"]
    assert third["score"] == bm25_tune > tune["mrr@10"] + 0.0125 and third["promoted"]
    assert third["champion_score"] == tune["mrr@10"]
    served = json.loads(Path("models/semantic_search/champion/serving.json").read_text())
    assert served["config"]["dense_weight"] == 0.0
    with pytest.raises(ValueError, match="heldout"):
        register({**TINY, "promotion": {**on_tune["promotion"], "heldout": "test"}})
