"""The service runs what the pipeline evaluated: a params.yaml change, after the real embed ->
index -> evaluate stages on a tiny encoder and corpus, changes how hybrid search ranks and
scores; an explicit setting still wins and is shown as an override; no card means defaults."""

import contextlib
import json
import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from mlstack.params import load_section
from mlstack.testing import live_server
from semantic_search.service import build_app
from semantic_search.settings import Settings

TINY = {
    "data": {},
    "encoder": {"model": "tiny"},
    "embed": {"batch_size": 8, "threads": 1},
    "index": {"hnsw": {"m": 8, "ef_construction": 50}},
    "evaluate": {"threads": 1, "latency_queries": 3},
}
EVEN = {"rrf_k": 60, "dense_weight": 1.0, "bm25_weight": 1.0, "candidates": 50}
BM25_ONLY = {"rrf_k": 5, "dense_weight": 0.0, "bm25_weight": 2.0, "candidates": 20}


@pytest.fixture(scope="module")
def repo(encoder_dir, corpus, tmp_path_factory, monkeypatch_module):
    """A working tree with the tiny encoder and corpus where the stages put them, embedded and
    indexed by the real stages (a retrieval params change reruns only ss_evaluate)."""
    from semantic_search.pipeline import embed_stage, index_stage

    root = tmp_path_factory.mktemp("repo")
    monkeypatch_module.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
    shutil.copytree(encoder_dir, root / "models/semantic_search/encoder")
    data = root / "data/semantic_search"
    data.mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(d.model_dump_json() + "\n" for d in corpus))
    queries = [{"query": " ".join(d.text.split()[:8]), "relevant": d.id} for d in corpus[::6]]
    (data / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (root / "reports/semantic_search").mkdir(parents=True)
    (root / "reports/semantic_search/encoder.json").write_text("{}")  # ss_quantize's report
    with contextlib.chdir(root):
        for variant in ("fp32", "int8"):
            embed_stage(variant, TINY)
        index_stage(TINY)
    return root


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as mp:
        yield mp


def run_evaluate(root: Path, retrieval: dict) -> dict:
    """params.yaml edited, then the evaluate stage as `semantic-search evaluate` runs it."""
    from semantic_search.pipeline import evaluate_stage

    with contextlib.chdir(root):
        Path("params.yaml").write_text(
            yaml.safe_dump({"semantic_search": {**TINY, "retrieval": retrieval}})
        )
        evaluate_stage(load_section("semantic_search"))
        return json.loads(Path("models/semantic_search/serving.json").read_text())


@contextlib.contextmanager
def service(root: Path, name: str, **overrides):
    fields = {
        "encoder_dir": root / "models/semantic_search/encoder",
        "index_uri": str(root / f"service-{name}"),
        "corpus_index": root / "data/semantic_search/index",
        "serving_card": root / "models/semantic_search/serving.json",
        "max_wait_ms": 2,
    }
    settings = Settings(**{**fields, **overrides})
    with live_server(build_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as c:
        yield c


def search(client: httpx.Client, mode: str) -> list[dict]:
    r = client.post(
        "/v1/search", json={"query": "the history of painting and music", "k": 5, "mode": mode}
    )
    assert r.status_code == 200, r.text
    return r.json()["results"]


def serving(client: httpx.Client) -> dict:
    return client.get("/v1/models").json()["data"][0]["serving"]


def test_a_params_change_after_the_pipeline_changes_the_service(repo):
    even = run_evaluate(repo, EVEN)
    assert even["config"] == {"encoder_variant": "int8", **EVEN}
    assert set(even["metrics"]) >= {"ndcg@10", "recall@10"} and even["mlflow_run_id"]
    with service(repo, "even") as c:
        hybrid = search(c, "hybrid")
        shown = serving(c)
    # Reciprocal rank fusion, weights 1 + 1 over 60 + rank: no score reaches 2/61.
    assert hybrid[0]["score"] <= 2 / 61 + 1e-6
    assert shown["config"] == even["config"] and shown["overrides"] == {}

    bm25_only = run_evaluate(repo, BM25_ONLY)
    assert bm25_only["params_hash"] != even["params_hash"]
    with service(repo, "bm25") as c:
        hybrid, bm25 = search(c, "hybrid"), search(c, "bm25")
        shown = serving(c)
    # Dense weight 0: hybrid ranks as BM25 does, and BM25's first hit scores 2 / (5 + 1).
    assert [h["id"] for h in hybrid] == [h["id"] for h in bm25]
    assert hybrid[0]["score"] == pytest.approx(2 / 6, abs=1e-6)
    assert shown["config"]["rrf_k"] == 5 and shown["params_hash"] == bm25_only["params_hash"]


def test_an_explicit_setting_wins_and_is_shown(repo, caplog):
    run_evaluate(repo, BM25_ONLY)
    with service(repo, "override", rrf_k=10) as c:
        hybrid = search(c, "hybrid")
        shown = serving(c)
    assert hybrid[0]["score"] == pytest.approx(2 / 11, abs=1e-6)  # card's weights, our rrf_k
    assert shown["overrides"] == {"rrf_k": 10}
    assert "rrf_k=10 (card: 5)" in caplog.text


def test_without_a_card_the_defaults_run_with_a_warning(repo, caplog):
    with service(repo, "nocard", serving_card=repo / "absent.json") as c:
        hybrid = search(c, "hybrid")
        shown = serving(c)
    assert shown["card"] is None and hybrid[0]["score"] <= 2 / 61 + 1e-6
    assert "no serving card at" in caplog.text
