"""The generation figures: nothing cited is "not measured" (None), never 0.0; every figure
carries its count and a 95% interval; MLflow gets only the numbers."""

import contextlib

import pytest

from rag_chatbot.answer_scores import bootstrap, generation_metrics, wilson
from rag_chatbot.evaluate import _log_to_mlflow


def row(*, answerable=True, no_answer=False, citations=0, correct=0, attributed=False, score=0.5):
    r = {"id": "q", "answerable": answerable, "no_answer": no_answer, "answer": "a"}
    if no_answer:
        return r
    return r | {
        "faithfulness": score,
        "citations": citations,
        "correct_citations": correct,
        "cited_after_attribution": attributed,
        "answer_relevance": score,
        "answer_correctness": score,
    }


def test_no_citation_is_not_measured_rather_than_zero():
    m = generation_metrics([row(attributed=True) for _ in range(12)])
    assert m["citation_correctness"] is None
    assert m["n"]["citation_correctness"] == 0
    assert m["interval95"]["citation_correctness"] is None
    # no unanswerable question asked: no-answer accuracy has nothing to measure either
    assert m["no_answer_accuracy"] is None
    # while answers that cite nothing are a measured 0 of 12, with an interval well above 0
    assert m["answers_with_citations"] == 0.0
    low, high = m["interval95"]["answers_with_citations"]
    assert low == 0.0 and 0.2 < high < 0.3


def test_citation_correctness_counts_citations_with_an_interval():
    rows = [row(citations=2, correct=2), row(citations=2, correct=1), row(no_answer=True)]
    rows += [row(answerable=False, no_answer=True), row(answerable=False)]
    m = generation_metrics(rows)
    assert m["citation_correctness"] == 0.75 and m["n"]["citation_correctness"] == 4
    low, high = m["interval95"]["citation_correctness"]
    assert low < 0.75 < high
    assert m["no_answer_accuracy"] == 0.5 and m["n"]["no_answer_accuracy"] == 2
    assert m["answered_rate"] == pytest.approx(2 / 3, abs=1e-4)


def test_wilson_matches_the_textbook_values():
    assert wilson(0, 12) == [0.0, 0.2425]
    low, high = wilson(6, 12)
    assert low == pytest.approx(1 - high, abs=1e-4)
    assert wilson(0, 0) is None


def test_bootstrap_brackets_the_mean_and_is_repeatable():
    values = [0.1, 0.9, 0.4, 0.6, 0.5, 0.3, 0.7, 0.2]
    low, high = bootstrap(values)
    assert low < sum(values) / len(values) < high
    assert bootstrap(values) == [low, high]
    assert bootstrap([0.5] * 10) == [0.5, 0.5]
    assert bootstrap([]) is None


def test_mlflow_gets_numbers_only(monkeypatch):
    import mlflow

    import mlstack.train.tracking

    logged: dict = {}

    @contextlib.contextmanager
    def fake_run(*args, **kwargs):
        yield type("Run", (), {"info": type("Info", (), {"run_id": "r1"})()})()

    monkeypatch.setattr(mlstack.train.tracking, "mlflow_run", fake_run)
    monkeypatch.setattr(mlflow, "log_metrics", lambda m: logged.update(m))
    generation = generation_metrics([row(), row()])
    report = {
        "default": "hybrid/40",
        "min_relevance": {"value": 0.5},
        "configs": {"hybrid/40": {"retrieval": {"recall@5": 0.8}, "generation": generation}},
    }
    p = {"retrieval": {"k": 5}, "generation": {"model": "m"}}
    _log_to_mlflow(p, report)
    assert logged["hybrid_40.recall_at_5"] == 0.8
    assert logged["hybrid_40.faithfulness"] == 0.5
    assert "hybrid_40.citation_correctness" not in logged  # None: not measured
    assert not any(k.endswith((".n", ".interval95")) for k in logged)
    assert report["mlflow_run_id"] == "r1"
