"""The `VectorStore` contract, run against every backend: LanceDB and Milvus Lite."""

import datetime as dt

import numpy as np
import pytest

from semantic_search.documents import Document, Filters
from semantic_search.stores import open_store
from semantic_search.stores.lance import where_clause
from semantic_search.stores.milvus import filter_expression

from .conftest import unit_vectors

DIM = 16


# "lancedb" answers from its in-memory copy; "lancedb-index" is a table too big to copy.
@pytest.fixture(params=["lancedb", "lancedb-index", "milvus"])
def store(request, tmp_path, corpus):
    uri = str(tmp_path / "milvus.db") if request.param == "milvus" else str(tmp_path / "index")
    if request.param == "milvus":
        pytest.importorskip("milvus_lite")
    options = {"memory_rows": 0} if request.param == "lancedb-index" else {}
    s = open_store(uri, DIM, **options)
    s.upsert(corpus, unit_vectors(len(corpus), DIM))
    s.optimize()
    yield s
    if request.param == "milvus":
        s.client.close()


def test_upsert_get_count_and_replace(store, corpus):
    assert store.count() == len(corpus)
    first = corpus[0]
    assert store.get([first.id])[0] == first
    changed = first.model_copy(
        update={"text": "Replaced text about volcanoes.", "metadata": {"v": 2}}
    )
    store.upsert([changed], unit_vectors(1, DIM, seed=9))
    store.optimize()
    assert store.count() == len(corpus)  # replaced, not duplicated
    assert store.get([first.id])[0].metadata == {"v": 2}
    assert store.text("volcanoes", 3)[0].document.id == first.id


def test_delete(store, corpus):
    ids = [corpus[0].id, corpus[1].id, "no-such-id"]
    assert store.delete(ids) == 2
    assert store.count() == len(corpus) - 2
    assert store.get(ids) == []


def test_an_emptied_store_searches_to_nothing(store, corpus):
    store.delete([d.id for d in corpus])
    store.optimize()
    assert store.count() == 0
    assert store.dense(unit_vectors(1, DIM)[0], 5) == []
    assert store.text("volcanoes", 5) == []


def test_a_store_of_texts_without_words_searches_to_nothing(store, corpus):
    """bm25s cannot index an empty vocabulary: a 500 on every search once schemathesis had
    replaced the corpus by documents such as "0"."""
    store.delete([d.id for d in corpus])
    store.upsert([Document(id="a", text="0"), Document(id="b", text="the")], unit_vectors(2, DIM))
    store.optimize()
    assert store.text("anything at all", 3) == []


def test_dense_search_ranks_by_cosine(store, corpus):
    vectors = unit_vectors(len(corpus), DIM)
    hits = store.dense(vectors[7], 5, with_vectors=True)
    assert hits[0].document.id == corpus[7].id
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    np.testing.assert_allclose(hits[0].vector, vectors[7], atol=1e-5)


def test_bm25_finds_the_keyword(store, corpus):
    word = max(corpus[0].text.split()[:30], key=len).strip(".,;()")
    hits = store.text(word, 10)
    assert hits and all(h.score > 0 for h in hits)
    assert any(word.lower() in h.document.text.lower() for h in hits[:3])


@pytest.mark.parametrize("search", ["dense", "text"])
def test_filters_apply_in_every_mode(store, corpus, search):
    def run(filters):
        if search == "dense":
            return store.dense(unit_vectors(1, DIM, seed=3)[0], 60, filters)
        return store.text("city music number history world century people", 60, filters)

    maths = run(Filters(topic="Mathematics"))
    assert maths and {h.document.topic for h in maths} == {"Mathematics"}
    both = run(Filters(topic=["Mathematics", "Arts"]))
    assert {h.document.topic for h in both} == {"Mathematics", "Arts"}
    dated = run(Filters(date_from=dt.date(2015, 1, 1), date_to=dt.date(2019, 12, 31)))
    assert dated and all(
        dt.date(2015, 1, 1) <= h.document.date <= dt.date(2019, 12, 31) for h in dated
    )
    assert run(Filters(source="elsewhere")) == []


def test_hostile_ids_and_filter_values_are_quoted(store):
    doc = Document(
        id='it\'s "quoted") OR 1=1 --', text="An id built to break a query.", topic="x'y"
    )
    store.upsert([doc], unit_vectors(1, DIM, seed=5))
    assert store.get([doc.id]) == [doc]
    assert [
        h.document.id for h in store.dense(unit_vectors(1, DIM, seed=5)[0], 5, Filters(topic="x'y"))
    ] == [doc.id]
    assert store.delete([doc.id]) == 1


def test_filter_translation():
    f = Filters(topic=["Arts", "O'Neill"], date_from="2020-01-01")
    assert where_clause(f) == "topic IN ('Arts', 'O''Neill') AND date >= 20200101"
    assert filter_expression(f) == 'topic in ["Arts", "O\'Neill"] and date >= 20200101'
    assert where_clause(Filters()) is None and filter_expression(None) == ""


def test_lance_refuses_a_different_dimension(tmp_path):
    open_store(str(tmp_path / "i"), DIM)
    with pytest.raises(ValueError, match="16-d"):
        open_store(str(tmp_path / "i"), 32)


def test_lance_copy_follows_writes_from_another_process(tmp_path, corpus):
    """Two handles on one folder, as two uvicorn workers have: each sees the other's writes."""
    reader = open_store(str(tmp_path / "index"), DIM)
    writer = open_store(str(tmp_path / "index"), DIM)
    vectors = unit_vectors(len(corpus), DIM)
    writer.upsert(corpus[:10], vectors[:10])
    assert reader.count() == 10 and reader.dense(vectors[3], 1)[0].document == corpus[3]
    writer.upsert(corpus[10:], vectors[10:])
    writer.delete([corpus[3].id])
    assert reader.dense(vectors[20], 1)[0].document == corpus[20]
    assert all(h.document.id != corpus[3].id for h in reader.dense(vectors[3], len(corpus)))
    assert reader.get([corpus[3].id, corpus[20].id]) == [corpus[20]]


def test_lance_copy_and_index_rank_alike(tmp_path, corpus):
    vectors = unit_vectors(len(corpus), DIM)
    copy = open_store(str(tmp_path / "index"), DIM)
    copy.upsert(corpus, vectors)
    index = open_store(str(tmp_path / "index"), DIM, memory_rows=0)
    query = vectors[7] + 0.3 * vectors[8]
    filters = Filters(topic=["Arts"])
    for f in (None, filters):
        a, b = copy.dense(query, 10, f), index.dense(query, 10, f)
        assert [h.document.id for h in a] == [h.document.id for h in b]
        assert np.allclose([h.score for h in a], [h.score for h in b], atol=1e-5)
