"""The natural-question set (its schema and split) and the evaluation's arithmetic: recall, the
"I don't know" and refusal rates, the floor chosen on tune, on tiny data and a tiny corpus."""

from collections import Counter

import pytest

from rag_chatbot.answer import Rag, RagConfig
from rag_chatbot.chunking import load_tokenizer
from rag_chatbot.extract import Section
from rag_chatbot.library import Library
from rag_chatbot.natural_eval import rag_search
from semantic_search.encoder import Encoder
from semantic_search.natural import (
    NATURAL,
    Outcome,
    check_questions,
    choose_floor,
    load_questions,
    run,
    score,
)
from semantic_search.retrieval import Retriever
from semantic_search.stores import open_store
from semantic_search.stores.memory import bm25_documents


def q(id_: str, answer: str, split: str = "tune") -> dict:
    return {
        "id": id_,
        "question": f"What about {id_}?",
        "answer_title": answer,
        "answerable": bool(answer),
        "split": split,
    }


def test_the_committed_question_file_is_well_formed():
    rows = load_questions(NATURAL)
    assert len(rows) >= 150
    assert check_questions(rows) == []
    counts = Counter((r["split"], r["answerable"]) for r in rows)
    assert all(counts[(s, a)] >= 15 for s in ("tune", "test") for a in (True, False))
    unanswerable = sum(not r["answerable"] for r in rows) / len(rows)
    assert 0.15 <= unanswerable <= 0.3
    assert [r["id"] for r in rows] == sorted({r["id"] for r in rows})  # unique, in file order


def test_check_questions_finds_each_kind_of_problem():
    good = q("a", "Nile")
    rows = [
        good,
        {**good, "question": "what ABOUT a?"},  # the same question, another case
        {**q("b", "Nile"), "split": "train"},
        {**q("c", ""), "answerable": True},
        {**q("d", "Nile"), "question": "Nile"},
        {k: v for k, v in q("e", "Nile").items() if k != "split"},
        q("f", "Atlantis"),
    ]
    problems = check_questions(rows, titles={"Nile"})
    for needle in (
        "row 1 (a): duplicate id",
        "row 1 (a): duplicate question",
        "split 'train'",
        "row 3 (c): answerable",
        "row 4 (d): not a question",
        "row 5 (e): fields",
        "'Atlantis' is not a corpus title",
    ):
        assert any(needle in p for p in problems), needle
    assert check_questions([good]) == []


def test_recall_and_the_two_floor_rates():
    questions = [q("1", "A"), q("2", "B"), q("3", "C"), q("4", ""), q("5", "")]
    outcomes = [
        Outcome(["A", "X"], 0.9, 2.0),  # rank 1
        Outcome(["X", "Y", "B"], 0.4, 4.0),  # rank 3, under a 0.5 floor: "I don't know"
        Outcome(["X", "Y"], 0.7, 6.0),  # missed
        Outcome(["X"], 0.3, 8.0),  # refused at 0.5
        Outcome([], None, 10.0),  # nothing retrieved: refused
    ]
    s = score(questions, outcomes, 0.5, k=5)
    assert (s["answerable"], s["unanswerable"]) == (3, 2)
    assert s["recall@1"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["recall@5"] == pytest.approx(2 / 3, abs=1e-4)
    assert s["mrr@5"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-4)
    assert s["idk_answerable"] == pytest.approx(1 / 3, abs=1e-4)
    assert s["refused_unanswerable"] == 1.0
    assert s["latency_p50_ms"] == 6.0
    assert score(questions, outcomes, 0.5, k=2)["recall@2"] == pytest.approx(1 / 3, abs=1e-4)
    assert "idk_answerable" not in score(questions, outcomes, None)


def test_the_floor_refuses_most_within_the_idk_cap():
    questions = [q(str(i), "A") for i in range(10)] + [q(f"u{i}", "") for i in range(4)]
    answerable = [Outcome(["A"], 0.3 + 0.05 * i) for i in range(10)]  # 0.30 .. 0.75
    unanswerable = [Outcome(["X"], r) for r in (0.1, 0.2, 0.3, 0.6)]
    outcomes = answerable + unanswerable
    picked = choose_floor(questions, outcomes, max_idk=0.1)
    # 0.31 says "I don't know" to one of ten (0.30) and refuses 0.1, 0.2 and 0.3.
    assert picked["value"] == 0.31
    assert picked["tune"] == {
        "min_relevance": 0.31,
        "idk_answerable": 0.1,
        "refused_unanswerable": 0.75,
    }
    assert choose_floor(questions, outcomes, max_idk=0.0)["value"] == 0.21
    strict = choose_floor(questions, outcomes, max_idk=-1.0)  # no floor can: balanced accuracy
    assert "balanced" in strict["rule"]


def test_title_and_metadata_fields_are_repeated_into_bm25_text():
    columns = {
        "text": ["the river", "a city"],
        "title": ["Nile", "Cairo"],
        "metadata": ['{"description": "river in Africa"}', "{}"],
    }
    assert bm25_documents(columns, None) == ["the river", "a city"]
    assert bm25_documents(columns, {"title": 2, "description": 1}) == [
        "the river\nNile Nile \nriver in Africa ",
        "a city\nCairo Cairo ",
    ]


def test_the_service_retrieval_on_a_tiny_corpus(encoder_dir, tmp_path):
    """BM25 (the tiny encoder's vectors are random): recall by article title through
    `Rag.retrieve`, and a title field that finds an article whose text lacks the word."""
    articles = {
        "Nile": "A major river that flows north through Egypt into the Mediterranean Sea.",
        "Tokyo": "The capital and largest city of Japan, on Honshu.",
        "Elephant": "The largest living land animals, with a long trunk and tusks.",
    }
    encoder = Encoder(encoder_dir)
    outcomes = {}
    for fields in ({}, {"title": 1}):
        store = open_store(str(tmp_path / f"index{len(fields)}"), encoder.dim, bm25_fields=fields)
        library = Library(
            store, encoder, tmp_path / f"m{len(fields)}.json", chunk_tokens=64, overlap_tokens=8
        )
        library.add_many((f"wiki/{t}", t, [Section(x)], "") for t, x in articles.items())
        config = RagConfig(k=2, mode="bm25", diversify=None, rewrite=False)
        search = rag_search(
            Rag(Retriever(encoder, store), None, load_tokenizer(str(encoder_dir)), config), config
        )
        questions = [q("capital", "Tokyo"), q("trunk", "Elephant"), q("nile", "Nile")]
        for row, text in zip(
            questions, ["capital of Japan?", "long trunk?", "the Nile?"], strict=True
        ):
            row["question"] = text
        outcomes[len(fields)] = (questions, run(search, questions, warm_up=1))
    questions, plain = outcomes[0]
    assert [o.ranked[:1] for o in plain] == [["Tokyo"], ["Elephant"], []]
    assert score(questions, plain, None)["recall@1"] == pytest.approx(2 / 3, abs=1e-4)
    questions, titled = outcomes[1]
    assert titled[2].ranked[:1] == ["Nile"]
    assert score(questions, titled, None)["recall@1"] == 1.0
    assert all(o.ms > 0 for o in titled)


def test_rag_evaluate_takes_the_floor_chosen_on_the_natural_tune_split():
    from rag_chatbot.evaluate import relevance_floor

    chosen = {"value": 0.31, "chosen_on": "natural tune split", "rule": "r", "tune": {}}
    sweep = {"best_balanced": {"min_relevance": 0.5}}
    assert relevance_floor("natural", sweep, chosen) == {
        "value": 0.31,
        "chosen_on": "natural tune split",
        "rule": "r",
    }
    assert relevance_floor("tune", sweep, chosen)["value"] == 0.5
    with pytest.raises(ValueError, match=r"natural\.json"):
        relevance_floor("natural", sweep, None)


def test_answer_metrics_count_the_answer_article_among_the_citations_the_user_sees():
    from rag_chatbot.answer import Citation, Source
    from rag_chatbot.natural_answers import answer_metrics, sample

    def cited(*titles: str) -> list[Citation]:
        sources = [Source(i + 1, t, t, t, "", None, "", "", 0.9) for i, t in enumerate(titles)]
        return [Citation(s.n, s, False) for s in sources]

    questions = [q("1", "Nile"), q("2", "Tokyo"), q("3", "Elephant"), q("4", ""), q("5", "")]
    events = [
        {"citations": cited("Cairo", "Nile"), "no_answer": False},  # cites it second: counts
        {"citations": cited("Kyoto"), "no_answer": False},  # cites a neighbour
        {"citations": [], "no_answer": True},  # "I don't know" on an answerable question
        {"citations": [], "no_answer": True},  # refused
        {"citations": cited("Nile"), "no_answer": False},  # answered an unanswerable one
    ]
    m = answer_metrics(questions, events)
    assert (m["answerable"], m["unanswerable"]) == (3, 2)
    assert m["cites_answer_article"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["idk_answerable"] == pytest.approx(1 / 3, abs=1e-4)
    assert m["refused_unanswerable"] == 0.5
    rows = [q(str(i), "A") for i in range(8)] + [q(f"u{i}", "") for i in range(2)]
    picked = sample(rows, 5)
    assert [r["id"] for r in picked] == ["0", "1", "2", "3", "u0"]
    assert sample(rows, None) == rows


def test_the_card_carries_fusion_and_bm25_fields_into_the_service(encoder_dir, tmp_path):
    """params.yaml's retrieval choices (fusion weights, BM25 field weights) reach the retriever
    the service builds through the serving card, not through hand-copied settings."""
    import contextlib
    import shutil

    from rag_chatbot.pipeline import write_serving_card
    from rag_chatbot.service import Settings, build_rag, serving_settings

    shutil.copytree(encoder_dir, tmp_path / "models/semantic_search/encoder")
    retrieval = {
        "k": 3,
        "mode": "hybrid",
        "diversify": None,
        "min_relevance": "natural",
        "context_tokens": 512,
        "rrf_k": 10,
        "dense_weight": 4.0,
        "bm25_weight": 1.0,
        "candidates": 30,
        "bm25_fields": {"title": 2},
    }
    p = {
        "chunking": {"sizes": [64], "default": 64, "overlap_tokens": 8},
        "retrieval": retrieval,
        "generation": {
            "answer_tokens": 64,
            "temperature": 0.0,
            "url": "",
            "model_dir": "m",
            "backend": "native",
            "tokenizer": "t",
        },
        "evaluate": {"support_threshold": 0.5},
    }
    floor = {"value": 0.31, "chosen_on": "natural tune split", "rule": "r"}
    report = {
        "min_relevance": floor,
        "default": "hybrid/64",
        "questions": {},
        "configs": {"hybrid/64": {"retrieval": {}}},
    }
    with contextlib.chdir(tmp_path):
        card = write_serving_card(p, report)
        settings, _ = serving_settings(
            Settings(
                encoder_dir=tmp_path / "models/semantic_search/encoder",
                index_uri=str(tmp_path / "index"),
                uploads_dir=tmp_path / "uploads",
                generator_tokenizer=str(encoder_dir),
                serving_card=tmp_path / "models/rag_chatbot/serving.json",
            )
        )
        rag, _ = build_rag(settings)
    assert card["config"]["bm25_fields"] == {"title": 2}
    assert (settings.min_relevance, settings.k, settings.rrf_k) == (0.31, 3, 10)
    assert rag.retriever.weights == {"dense": 4.0, "bm25": 1.0}
    assert (rag.retriever.rrf_k, rag.retriever.candidates) == (10, 30)
    assert rag.retriever.store._mirror.bm25_fields == {"title": 2}


def test_hyde_searches_the_question_with_the_generators_answer(encoder_dir, tmp_path, reset_llm):
    # A question that shares no word with its article: the generator's answer names it.
    from rag_chatbot.expansion import PROMPT, hyde_queries

    question = "What runs past Cairo?"
    reset_llm.hyde_reply = "The Nile flows past Cairo, north through Egypt."
    queries = hyde_queries(reset_llm.url, {"concurrency": 2}, [question])
    assert queries == {question: f"{question} {reset_llm.hyde_reply}"}
    sent = reset_llm.requests[-1]
    assert sent["messages"] == [{"role": "user", "content": PROMPT.format(question=question)}]
    assert sent["temperature"] == 0 and sent["max_tokens"] == 40

    encoder = Encoder(encoder_dir)
    store = open_store(str(tmp_path / "index"), encoder.dim)
    library = Library(store, encoder, tmp_path / "m.json", chunk_tokens=64, overlap_tokens=8)
    articles = {
        "Nile": "A major river that flows north through Egypt into the Mediterranean Sea.",
        "Tokyo": "The capital and largest city of Japan, on Honshu.",
    }
    library.add_many((f"wiki/{t}", t, [Section(x)], "") for t, x in articles.items())
    config = RagConfig(k=1, mode="bm25", diversify=None, rewrite=False)
    rag = Rag(Retriever(encoder, store), None, load_tokenizer(str(encoder_dir)), config)
    row = q("cairo", "Nile") | {"question": question}
    plain = run(rag_search(rag, config), [row], warm_up=0)
    expanded = run(rag_search(rag, config, queries), [row], warm_up=0)
    assert plain[0].ranked == [] and expanded[0].ranked == ["Nile"]
    # the expansion retrieves; the question's own relevance is what the floor sees
    gated = rag.retrieve(queries[question], config, question=question)
    ungated = rag.retrieve(queries[question], config)
    assert [s.title for s in gated.sources] == [s.title for s in ungated.sources] == ["Nile"]
    vector, _, _ = rag.retriever.embed_query(question)
    hit = rag.retriever.search(queries[question], k=1, mode="bm25", with_vectors=True).hits[0]
    assert gated.top_relevance == pytest.approx(float(hit.vector @ vector), abs=1e-6)
    assert gated.top_relevance != pytest.approx(ungated.top_relevance, abs=1e-6)
