"""ss_natural_eval's retriever: params.yaml's fusion weights reach `Retriever`, BM25 field
weights reach the store, and a weighted title finds an article whose text lacks the word."""

import pytest

from semantic_search.documents import Document
from semantic_search.encoder import Encoder
from semantic_search.indexing import index_documents
from semantic_search.natural import load_questions
from semantic_search.natural_eval import evaluate, open_retriever
from semantic_search.retrieval import SearchMode


def test_open_retriever_passes_fusion_and_fields_and_titles_count(encoder_dir, tmp_path):
    encoder = Encoder(encoder_dir)
    docs = [
        Document(id="Nile", title="Nile", text="A major river flowing north into the sea."),
        Document(id="Tokyo", title="Tokyo", text="The capital and largest city of Japan."),
    ]
    plain = open_retriever(encoder, tmp_path / "index", {"rrf_k": 7, "dense_weight": 3.0})
    index_documents(plain.store, encoder, docs)
    assert (plain.rrf_k, plain.weights) == (7, {"dense": 3.0, "bm25": 1.0})
    titled = open_retriever(encoder, tmp_path / "index", {"bm25_fields": {"title": 1}})
    hits = {
        name: [h.document.id for h in r.search("nile", k=2, mode=SearchMode.bm25).hits]
        for name, r in (("plain", plain), ("titled", titled))
    }
    assert hits == {"plain": [], "titled": ["Nile"]}


def test_evaluate_scores_both_splits(encoder_dir, tmp_path):
    """The committed question set through a one-article index (BM25): only the questions whose
    answer is that article count, on the split each is in."""
    encoder = Encoder(encoder_dir)
    retriever = open_retriever(encoder, tmp_path / "index", {})
    docs = [Document(id="Nile", title="Nile", text="The river that flows through Cairo.")]
    index_documents(retriever.store, encoder, docs)
    questions = load_questions()
    out = evaluate(retriever, SearchMode.bm25, questions)
    for name in ("tune", "test"):
        rows = [q for q in questions if q["split"] == name and q["answerable"]]
        nile = [q for q in rows if q["answer_title"] == "Nile"]
        assert out[name]["answerable"] == len(rows)
        assert out[name]["recall@10"] == pytest.approx(len(nile) / len(rows), abs=1e-4)
    assert out["test"]["recall@10"] > 0  # "Which river flows through Cairo?" is in test
