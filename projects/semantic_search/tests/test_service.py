"""The service over real HTTP on a tiny encoder and a small real corpus: every route, the real
`openai` client, the API key on every computing route, bad input, and metrics."""

import asyncio

import httpx
import numpy as np
import openai
import pytest

from mlstack.testing import live_server
from semantic_search.encoder import Encoder
from semantic_search.indexing import index_documents
from semantic_search.service import build_app
from semantic_search.settings import Settings
from semantic_search.stores import open_store

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture(scope="module")
def base_url(encoder_dir, corpus, tmp_path_factory):
    index = tmp_path_factory.mktemp("svc") / "index"
    encoder = Encoder(encoder_dir)
    index_documents(open_store(str(index), encoder.dim), encoder, corpus, batch_size=32)
    settings = Settings(
        encoder_dir=encoder_dir,
        index_uri=str(index),
        api_key=KEY,
        max_documents=4,
        max_inputs=8,
        max_document_chars=5000,
        max_wait_ms=10,
        monitor_dir=tmp_path_factory.mktemp("monitor"),
    )
    with live_server(build_app(settings)) as url:
        yield url


@pytest.fixture
def http(base_url):
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=30) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/search", {"query": "music"}),
        ("POST", "/v1/embeddings", {"input": "music"}),
        ("GET", "/v1/documents/x", None),
        ("GET", "/v1/stats", None),
        ("POST", "/v1/documents", {"documents": [{"id": "d", "text": "t"}]}),
        ("DELETE", "/v1/documents/x", None),
    ],
)
def test_every_computing_route_needs_the_key(base_url, method, path, body):
    r = httpx.request(method, base_url + path, json=body, timeout=30)
    assert r.status_code == 401, r.text


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_modes_with_filters_and_highlights(http, mode):
    r = http.post(
        "/v1/search",
        json={"query": "painting music", "k": 4, "mode": mode, "filters": {"topic": ["Arts"]}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert 0 < len(body["results"]) <= 4 and body["mode"] == mode
    assert {h["topic"] for h in body["results"]} == {"Arts"}
    if mode == "bm25":
        first = body["results"][0]
        marked = [first["snippet"][s:e].lower() for s, e in first["highlights"]]
        assert any(m.startswith(("paint", "music")) for m in marked)


def test_search_with_mmr_and_dates(http):
    r = http.post(
        "/v1/search",
        json={"query": "history", "k": 3, "diversify": 0.5, "filters": {"date_from": "2015-01-01"}},
    )
    assert r.status_code == 200
    assert all(h["date"] >= "2015-01-01" for h in r.json()["results"])


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        ({"query": " \t\n "}, 422, "invalid_string_pattern_mismatch", "query"),
        ({"query": "word " * 100, "truncate": False}, 400, "too_many_tokens", "query"),
        ({"query": "x", "k": 0}, 422, "invalid_greater_than_equal", "k"),
        ({"query": "x", "k": 1000}, 422, "invalid_less_than_equal", "k"),
        (
            {"query": "x", "filters": {"colour": "red"}},
            422,
            "invalid_extra_forbidden",
            "filters.colour",
        ),
        ({"query": "x", "mode": "fuzzy"}, 422, "invalid_enum", "mode"),
        ({"query": "x", "rerank": True}, 400, "reranker_unavailable", "rerank"),
    ],
)
def test_bad_searches_get_a_clear_4xx(http, body, status, code, param):
    r = http.post("/v1/search", json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"]) == (code, param)


def test_too_long_query_is_truncated_by_default(http):
    r = http.post("/v1/search", json={"query": "word " * 100})
    assert r.status_code == 200 and r.json()["truncated"] is True
    assert r.json()["query_tokens"] > 64


def test_malformed_json_is_a_400(http):
    r = http.post("/v1/search", content=b'{"query": ', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"


def test_documents_lifecycle(http):
    doc = {"id": "note/1", "text": "Zebrafish regenerate their hearts.", "topic": "Notes"}
    r = http.post("/v1/documents", json={"documents": [doc]})
    assert r.status_code == 200 and r.json()["upserted"] == 1
    assert http.get("/v1/documents/note/1").json()["text"] == doc["text"]
    hits = http.post("/v1/search", json={"query": "zebrafish", "mode": "bm25"}).json()["results"]
    assert hits[0]["id"] == "note/1"
    assert http.delete("/v1/documents/note/1").json() == {"id": "note/1", "deleted": True}
    assert http.get("/v1/documents/note/1").status_code == 404
    assert http.delete("/v1/documents/note/1").status_code == 404


@pytest.mark.parametrize(
    ("documents", "code", "param"),
    [
        ([{"id": f"d{i}", "text": "t"} for i in range(5)], "too_many_documents", "documents"),
        ([{"id": "d", "text": "x" * 5001}], "document_too_long", "documents[0].text"),
        ([{"id": "d", "text": "a"}, {"id": "d", "text": "b"}], "duplicate_id", "documents"),
    ],
)
def test_bad_uploads(http, documents, code, param):
    r = http.post("/v1/documents", json={"documents": documents})
    assert r.status_code == (409 if code == "duplicate_id" else 400)
    assert r.json()["error"]["code"] == code
    assert r.json()["error"]["param"] == param


def test_blank_document_text_is_refused(http):
    r = http.post("/v1/documents", json={"documents": [{"id": "d", "text": "  "}]})
    assert r.status_code == 422 and r.json()["error"]["param"] == "documents.0.text"


def test_openai_client_embeddings(base_url, encoder_dir):
    client = openai.OpenAI(base_url=f"{base_url}/v1", api_key=KEY)
    model = client.models.list().data[0].id
    texts = ["first sentence", "the second one is a bit longer"]
    response = client.embeddings.create(model=model, input=texts)  # base64 on the wire
    got = np.array([d.embedding for d in response.data], np.float32)
    expected = Encoder(encoder_dir).encode(texts)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert response.usage.prompt_tokens > 0
    single = client.embeddings.create(model=model, input="one", encoding_format="float")
    assert len(single.data) == 1 and len(single.data[0].embedding) == 32
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError, match="over the limit of 8"):
        client.embeddings.create(model=model, input=["x"] * 9)


def test_concurrent_embeddings_are_batched(base_url):
    async def main():
        async with httpx.AsyncClient(base_url=base_url, headers=AUTH, timeout=30) as client:
            rs = await asyncio.gather(
                *[client.post("/v1/embeddings", json={"input": f"text {i}"}) for i in range(24)]
            )
        return rs

    assert all(r.status_code == 200 for r in asyncio.run(main()))


def test_stats_metrics_and_demo(http):
    stats = http.get("/v1/stats").json()
    assert stats["documents"] == 60 and stats["backend"] == "lancedb" and stats["dim"] == 32
    assert set(stats["topics"]) == {"Arts", "Mathematics", "Geography"}
    http.post("/v1/search", json={"query": "qqqzzzxxx", "mode": "bm25"})
    http.post("/v1/search", json={"query": "a dense one", "mode": "dense"})
    text = http.get("/metrics").text
    for name in (
        "search_encode_duration_seconds",
        "search_duration_seconds_bucket",
        'search_zero_results_total{mode="bm25"}',
        "model_batch_size_bucket",
    ):
        assert name in text
    demo = http.get("/demo/")
    assert demo.status_code == 200 and "/v1/search" in demo.text
