"""rag_natural_eval's wiring: one generator serves the HyDE queries and the answers; without a
generator nothing is generated, a served HyDE setting is refused, a HyDE variant is skipped.
The retrieval and the generator are stand-ins here (test_natural.py runs the real retrieval)."""

import contextlib

import pytest

from rag_chatbot import natural_eval


def question(id_: str, text: str, answer: str, split: str) -> dict:
    return {
        "id": id_,
        "question": text,
        "answer_title": answer,
        "answerable": bool(answer),
        "split": split,
    }


QUESTIONS = [
    question("a", "Which river flows through Cairo?", "Nile", "tune"),
    question("b", "Who wrote Hamlet?", "", "test"),
]


@pytest.fixture
def stage(monkeypatch):
    calls = {"endpoints": 0, "hyde": 0, "answers": [], "setups": []}

    @contextlib.contextmanager
    def endpoint(g):
        calls["endpoints"] += 1
        yield "http://generator/v1"

    def hyde(url, g, questions):
        calls["hyde"] += 1
        return {q: f"{q} An answer." for q in questions}

    def evaluate_setup(setup, libraries, tokenizer, questions, max_idk, queries=None):
        calls["setups"].append((setup, queries))
        floor = {"value": 0.5, "sweep": []}
        return {"min_relevance": floor, "tune": {}, "test": {}}

    monkeypatch.setattr("rag_chatbot.evaluate.generator_endpoint", endpoint)
    monkeypatch.setattr("rag_chatbot.expansion.hyde_queries", hyde)
    monkeypatch.setattr("rag_chatbot.chunking.load_tokenizer", lambda path: None)
    monkeypatch.setattr("rag_chatbot.pipeline.write_report", lambda name, report: report)
    monkeypatch.setattr(natural_eval, "load_questions", lambda: QUESTIONS)
    monkeypatch.setattr(natural_eval, "evaluate_setup", evaluate_setup)
    monkeypatch.setattr(
        natural_eval, "answer_splits", lambda *a: calls["answers"].append(a[-1]) or {"test": {}}
    )
    return calls


def params(expand, generate, variants):
    retrieval = {"k": 5, "mode": "hybrid", "diversify": None, "expand": expand}
    natural = {"threads": 1, "max_idk": 0.1, "tokenizer": "t", "generate": generate}
    return {
        "chunking": {"default": 64, "overlap_tokens": 16},
        "retrieval": retrieval,
        "natural": natural | {"variants": variants},
    }


def test_one_generator_for_the_hyde_queries_and_the_answers(stage):
    g = {"model_dir": "m", "backend": "openvino", "concurrency": 2, "per_split": None}
    report = natural_eval.natural_stage(params("hyde", g, {"no_hyde": {"expand": None}}))
    assert stage["endpoints"] == 1 and stage["hyde"] == 1
    assert stage["answers"] == ["http://generator/v1"] and "answers" in report
    served, variant = stage["setups"]
    assert served[1]["Who wrote Hamlet?"] == "Who wrote Hamlet? An answer."
    assert variant == ({**served[0], "expand": None}, None)
    assert report["variants"]["no_hyde"]["change"] == {"expand": None}


def test_without_a_generator_nothing_is_generated(stage):
    report = natural_eval.natural_stage(params(None, None, {"hyde": {"expand": "hyde"}}))
    assert stage["endpoints"] == stage["hyde"] == 0 and stage["answers"] == []
    assert "answers" not in report
    assert report["variants"]["hyde"]["skipped"] == "no generator (generate)"
    with pytest.raises(ValueError, match=r"hyde needs natural\.generate"):
        natural_eval.natural_stage(params("hyde", None, {}))


@pytest.mark.parametrize(("asked", "answered"), [(["test"], ["test"]), (None, ["tune", "test"])])
def test_only_the_splits_asked_for_are_answered(monkeypatch, asked, answered):
    from rag_chatbot import natural_answers
    from rag_chatbot.answer import RagConfig

    seen: dict = {}
    monkeypatch.setattr(natural_eval, "setup_rag", lambda *a: (None, RagConfig()))
    monkeypatch.setattr(natural_answers, "generate", lambda *a: seen.update(a[3]) or {})
    p = {
        "retrieval": {"context_tokens": 1024},
        "generation": {"answer_tokens": 64},
        "evaluate": {"support_threshold": 0.5},
    }
    g = {"splits": asked, "per_split": None}
    natural_eval.answer_splits(p, {}, 0.5, None, None, QUESTIONS, g, "http://generator/v1")
    assert list(seen) == answered
    assert [q["id"] for q in seen[answered[-1]]] == ["b"]
