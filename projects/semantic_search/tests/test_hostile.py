"""Hostile input over real HTTP: each is a clear 4xx naming the field and the limit, answered
within a second, and nothing reaches the index or the model first."""

import itertools
import string
import time

import httpx
import pytest

from mlstack.testing import live_server
from semantic_search.service import build_app
from semantic_search.settings import Settings

MB = 1_000_000
JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def http(encoder_dir, tmp_path_factory):
    settings = Settings(
        encoder_dir=encoder_dir,
        index_uri=str(tmp_path_factory.mktemp("h") / "i"),
        corpus_index=None,
        max_request_tokens=100,
        max_wait_ms=2,
    )
    with live_server(build_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
        yield client


def timed(http, method, path, **kwargs) -> httpx.Response:
    t0 = time.perf_counter()
    r = http.request(method, path, **kwargs)
    assert time.perf_counter() - t0 < 1.0, f"{path} took {time.perf_counter() - t0:.2f} s"
    return r


def doc(**fields):
    return {"documents": [{"id": "d", "text": "t", **fields}]}


@pytest.mark.parametrize(
    ("path", "body", "param", "limit"),
    [
        ("/v1/search", {"query": "a" * MB}, "query", 4000),
        ("/v1/search", {"query": "x", "k": 10**30}, "k", 100),
        (
            "/v1/search",
            {"query": "x", "filters": {"topic": ["t"] * 1000}},
            "filters.topic",
            64,
        ),
        ("/v1/search", {"query": "x", "filters": {"source": "s" * MB}}, "filters.source", 256),
        ("/v1/documents", doc(text="b" * MB), "documents.0.text", 100_000),
        ("/v1/documents", doc(id="i" * MB), "documents.0.id", 256),
        ("/v1/documents", doc(title="t" * MB), "documents.0.title", 1000),
        (
            "/v1/documents",
            doc(metadata={str(i): i for i in range(1000)}),
            "documents.0.metadata",
            32,
        ),
        ("/v1/documents", doc(metadata={"m": "v" * MB}), "documents.0.metadata.m", 4000),
        (
            "/v1/documents",
            {"documents": [{"id": str(i), "text": "t"} for i in range(300)]},
            "documents",
            256,
        ),
        ("/v1/embeddings", {"input": "c" * MB}, "input", 20_000),
        ("/v1/embeddings", {"input": ["x"] * 10_000}, "input", 256),
    ],
)
def test_oversized_input_is_a_422_naming_field_and_limit(http, path, body, param, limit):
    r = timed(http, "POST", path, json=body)
    assert r.status_code == 422, r.text
    err = r.json()["error"]
    assert (err["param"], err["limit"]) == (param, limit)
    assert str(limit) in err["message"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/search", {"query": " \n\t\u3000"}, "query"),
        ("/v1/search", {"query": "x", "k": True}, "k"),
        ("/v1/search", {"query": "x", "filters": {"topic": [""]}}, "filters.topic.0"),
        ("/v1/search", {"query": "x", "filters": {"date_from": 0}}, "filters.date_from"),
        ("/v1/documents", doc(id="  "), "documents.0.id"),
        ("/v1/documents", doc(text="\u200a\x1f "), "documents.0.text"),
        ("/v1/documents", doc(date=0), "documents.0.date"),
        ("/v1/documents", doc(date="20200101"), "documents.0.date"),
        ("/v1/documents", doc(extra="field"), "documents.0.extra"),
        ("/v1/documents", {"documents": []}, "documents"),
        ("/v1/embeddings", {"input": ["x", " "]}, "input.1"),
        ("/v1/embeddings", {"input": []}, "input"),
        ("/v1/embeddings", {"input": "x", "dimensions": "32"}, "dimensions"),
        ("/v1/embeddings", {"input": "x", "user": "u-1"}, "user"),  # not honoured: refused
        # a hyphenated key of the client's is a field, not one of pydantic's union branches
        ("/v1/documents", doc(metadata={"page-count": [1]}), "documents.0.metadata.page-count"),
    ],
)
def test_empty_blank_and_mistyped_values_are_a_422(http, path, body, param):
    r = timed(http, "POST", path, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["error"]["param"] == param


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_metadata_is_refused_not_stored(http, value):
    body = '{"documents": [{"id": "nan", "text": "t", "metadata": {"x": ' + value + "}}]}"
    r = timed(http, "POST", "/v1/documents", content=body, headers=JSON)
    assert r.status_code == 422 and r.json()["error"]["param"] == "documents.0.metadata.x"
    assert http.get("/v1/documents/nan").status_code == 404


@pytest.mark.parametrize(
    ("content", "status"),
    [
        (b'{"query": "\xff\xfe caf\xe9"}', 400),  # invalid UTF-8
        (b'{"query": "x", "filters": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
        (b"[" * 1_000_000, 400),
        (b'{"query": "' + b"a" * 11 * MB + b'"}', 413),  # over the body limit
    ],
)
def test_malformed_and_huge_bodies(http, content, status):
    r = timed(http, "POST", "/v1/search", content=content, headers=JSON)
    assert r.status_code == status and "error" in r.json()


def test_nul_bytes_are_plain_characters_in_text_but_never_in_an_id(http):
    """JSON allows \u0000 in strings; the index stores and finds it in text like any other
    character. An id is a key in every store (Milvus, the RAG service's PostgreSQL registry,
    which refuses NUL): refused at the edge (422 naming it), as the RAG service does."""
    r = timed(http, "POST", "/v1/documents", json=doc(id="nul-text", text="a\x00b zebra"))
    assert r.status_code == 200
    assert http.get("/v1/documents/nul-text").json()["text"] == "a\x00b zebra"
    assert timed(http, "POST", "/v1/search", json={"query": "zebra\x00"}).status_code == 200
    r = timed(http, "POST", "/v1/documents", json=doc(id="nul\x00id", text="zebra"))
    assert r.status_code == 422 and r.json()["error"]["param"] == "documents.0.id", r.text
    assert timed(http, "GET", "/v1/documents/nul%00id").status_code == 422


def test_over_the_token_budget_is_a_400_before_encoding(http):
    r = timed(http, "POST", "/v1/embeddings", json={"input": ["word " * 30] * 8, "truncate": True})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"], err["limit"]) == ("too_many_tokens", "input", 100)


def long_text(seed: int) -> str:
    """20,000 characters of varied words (the largest text the schema takes): ~11k tokens."""
    import random

    rng = random.Random(seed)
    words = ("".join(rng.choices(string.ascii_lowercase, k=rng.randint(2, 9))) for _ in range(5000))
    return " ".join(words)[:20_000]


@pytest.mark.parametrize(
    ("truncate", "param", "limit"), [(False, "input.0", 64), (True, "input", 100)]
)
def test_the_largest_embeddings_request_is_refused_at_its_first_fault(http, truncate, param, limit):
    # 256 texts of 20,000 characters: the whole batch was tokenized (2.9 s of CPU) before the
    # first text over the window, or the inputs over the budget, were refused.
    texts = [long_text(i) for i in range(256)]
    r = timed(http, "POST", "/v1/embeddings", json={"input": texts, "truncate": truncate})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert (err["code"], err["param"], err["limit"]) == ("too_many_tokens", param, limit)


def test_highlighting_long_documents_for_a_long_query_stays_fast(http):
    """1000 distinct query words against ten 100 KB documents: 6+ s of regex before the cap."""
    text = "zzq " * 25_000
    docs = [{"id": f"long-{i}", "text": text} for i in range(10)]
    assert http.post("/v1/documents", json={"documents": docs}).status_code == 200
    words = ["".join(w) for w in itertools.product(string.ascii_lowercase, repeat=3)]
    query = " ".join(words)[:4000]
    r = timed(
        http,
        "POST",
        "/v1/search",
        json={"query": query, "k": 10, "mode": "dense", "truncate": True},
    )
    assert r.status_code == 200 and len(r.json()["results"]) == 10


def test_dates_before_year_1000_round_trip(http):
    """Found by schemathesis: year 738 was stored as 7381009, and reading it back raised (500)."""
    r = http.post(
        "/v1/documents", json=doc(id="old", text="a Tang dynasty poem", date="0738-10-09")
    )
    assert r.status_code == 200
    assert http.get("/v1/documents/old").json()["date"] == "0738-10-09"
    hits = http.post("/v1/search", json={"query": "Tang poem", "mode": "bm25"}).json()["results"]
    assert hits[0]["id"] == "old" and hits[0]["date"] == "0738-10-09"
