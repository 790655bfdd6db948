"""The service runs what the pipeline evaluated: a params.yaml change, after the real index ->
questions -> evaluate stages (a few packaged articles, the tiny encoder), changes the chunks an
upload gets, how many sources come back, the refusal floor and the generation limit; the
relevance floor can be chosen by the evaluation on the tune split."""

import contextlib
import json
import shutil
from pathlib import Path

import httpx
import pytest
import yaml

from mlstack.params import load_section
from mlstack.testing import live_server
from rag_chatbot.service import build_app
from rag_chatbot.settings import Settings

ARTICLES = 40  # indexed; 8 more are held out (unanswerable questions)
TEXT = " ".join(f"Fact {i}: zebras graze on the savanna grasses in season {i}." for i in range(30))


def params(
    overlap: int,
    k: int,
    min_relevance: float | str,
    answer_tokens: int,
    max_per_document: int | None = None,
) -> dict:
    return {
        "rag_chatbot": {
            "corpus": {"held_out_articles": 8, "seed": 11, "threads": 1},
            "chunking": {"sizes": [40], "default": 40, "overlap_tokens": overlap},
            "questions": {"per_kind": 6, "tune_share": 0.5, "seed": 5},
            "retrieval": {
                "k": k,
                "mode": "hybrid",
                "diversify": None,
                "max_per_document": max_per_document,
                "min_relevance": min_relevance,
                "context_tokens": 1024,
            },
            "generation": {
                "answer_tokens": answer_tokens,
                "temperature": 0.0,
                "url": "http://127.0.0.1:9/v1",
                "model_dir": "unused",
                "backend": "native",
                "tokenizer": "models/semantic_search/encoder",
                "concurrency": 1,
            },
            "evaluate": {
                "threads": 1,
                "support_threshold": 0.5,
                "generate_configs": [],
                "generate_per_kind": 0,
                "generate_unanswerable": 0,
            },
        }
    }


@pytest.fixture(scope="module")
def repo(encoder_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("repo")
    shutil.copytree(encoder_dir, root / "models/semantic_search/encoder")
    with pytest.MonkeyPatch.context() as mp:
        import rag_chatbot.corpus

        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlflow.db'}")
        # The stages' own article split, cut down to a few articles.
        split = rag_chatbot.corpus.split_articles
        mp.setattr(
            rag_chatbot.corpus,
            "split_articles",
            lambda seed, held_out: tuple(part[:ARTICLES] for part in split(seed, held_out)),
        )
        yield root


def run_pipeline(root: Path, p: dict) -> dict:
    """params.yaml edited, then the stages DVC reruns for it; -> the serving card."""
    from rag_chatbot.pipeline import evaluate_stage, index_stage, questions_stage

    with contextlib.chdir(root):
        Path("params.yaml").write_text(yaml.safe_dump(p))
        section = load_section("rag_chatbot")
        index_stage(section)
        questions_stage(section)
        evaluate_stage(section)
        return json.loads(Path("models/rag_chatbot/serving.json").read_text())


@contextlib.contextmanager
def service(root: Path, name: str, llm, **overrides):
    fields = {
        "encoder_dir": root / "models/semantic_search/encoder",
        "index_uri": str(root / name / "index"),
        "uploads_dir": root / name / "uploads",
        "generator_url": llm.url,
        "generator_tokenizer": str(root / "models/semantic_search/encoder"),
        "serving_card": root / "models/rag_chatbot/serving.json",
    }
    with contextlib.chdir(root):  # the card's corpus index is relative, as dvc.yaml writes it
        app = build_app(Settings(**{**fields, **overrides}))
        with live_server(app) as url, httpx.Client(base_url=url, timeout=60) as client:
            yield client


def upload_chunks(client: httpx.Client) -> int:
    r = client.post("/v1/documents", files={"file": ("zebra.txt", TEXT.encode(), "text/plain")})
    assert r.status_code in (200, 201), r.text
    return r.json()["document"]["chunks"]


def ask(client: httpx.Client) -> dict:
    body = {"messages": [{"role": "user", "content": "What do zebras graze on?"}]}
    r = client.post("/v1/chat", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def retrieved(client: httpx.Client) -> list[str]:
    """The documents of the sources `/v1/retrieve` gives, in order."""
    r = client.post("/v1/retrieve", json={"query": "zebras graze", "min_relevance": -1})
    assert r.status_code == 200, r.text
    return [s["doc_id"] for s in r.json()["sources"]]


def test_a_params_change_after_the_pipeline_changes_the_service(repo, reset_llm):
    card = run_pipeline(repo, params(overlap=0, k=4, min_relevance=-1.0, answer_tokens=64))
    assert card["config"]["min_relevance"] == -1.0 and card["config"]["overlap_tokens"] == 0
    assert "recall@4" in card["metrics"]["retrieval"]
    with service(repo, "a", reset_llm) as c:
        plain = upload_chunks(c)
        answer, sources = ask(c), retrieved(c)
        shown = c.get("/v1/models").json()["data"][0]["serving"]
    assert not answer["no_answer"] and reset_llm.requests[-1]["max_tokens"] == 64
    assert len(sources) == 4 and shown["config"] == card["config"] and shown["overrides"] == {}
    assert sources.count("zebra.txt") >= 2  # the upload's chunks fill most places

    reset_llm.requests.clear()
    p = params(overlap=16, k=3, min_relevance=1.0, answer_tokens=32, max_per_document=1)
    card = run_pipeline(repo, p)
    with service(repo, "b", reset_llm) as c:
        overlapping = upload_chunks(c)
        answer, sources = ask(c), retrieved(c)
    assert overlapping > plain  # 16 tokens of each chunk repeated in the next
    assert answer["no_answer"] and not reset_llm.requests  # refused under the card's floor
    assert card["config"]["max_per_document"] == 1
    assert len(sources) == 3 and len(set(sources)) == 3 and sources[0] == "zebra.txt"


def test_the_floor_is_chosen_on_the_tune_split(repo):
    card = run_pipeline(repo, params(overlap=0, k=4, min_relevance="tune", answer_tokens=64))
    report = json.loads((repo / "reports/rag_chatbot/evaluation.json").read_text())
    chosen = report["threshold"]["best_balanced"]["min_relevance"]
    assert card["config"]["min_relevance"] == chosen
    assert card["evaluated"]["min_relevance"]["chosen_on"] == "tune split"
    assert report["min_relevance"]["value"] == chosen


def test_an_explicit_setting_wins_and_a_bad_floor_fails_the_stage(repo, reset_llm, caplog):
    run_pipeline(repo, params(overlap=0, k=4, min_relevance=1.0, answer_tokens=64))
    with service(repo, "explicit", reset_llm, min_relevance=-1.0) as c:
        answer = ask(c)
        shown = c.get("/v1/models").json()["data"][0]["serving"]
    assert not answer["no_answer"] and shown["overrides"] == {"min_relevance": -1.0}
    assert "min_relevance=-1.0 (card: 1.0)" in caplog.text
    with pytest.raises(ValueError, match="min_relevance"):
        run_pipeline(repo, params(overlap=0, k=4, min_relevance="auto", answer_tokens=64))
