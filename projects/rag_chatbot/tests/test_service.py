"""The RAG API over real HTTP, generating through the fake OpenAI-compatible server."""

import json

import httpx
import pytest

from mlstack.testing import live_server
from rag_chatbot.service import Settings, build_app

from .conftest import ZEBRA, make_pdf

KEY = "test-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# Random-weight encoder: BM25 ranks, and no relevance floor (see test_answer.py).
RETRIEVAL = {"mode": "bm25", "min_relevance": -1, "diversify": None}


@pytest.fixture(autouse=True)
def _default_replies(reset_llm):
    """The fake generator answers normally unless a test says otherwise."""


def settings_for(encoder_dir, tmp_path, generator_url: str, **overrides) -> Settings:
    fields = {
        "encoder_dir": encoder_dir,
        "index_uri": str(tmp_path / "index"),
        "generator_url": generator_url,
        "generator_tokenizer": str(encoder_dir),
        "chunk_tokens": 40,
        "overlap_tokens": 0,
        "api_key": KEY,
        "max_upload_bytes": 200_000,
        "max_pages": 5,
        "uploads_dir": tmp_path / "uploads",
        "corpus_index": None,
        "serving_card": None,  # the settings here, not this checkout's champion card
    }
    return Settings(**{**fields, **overrides})


@pytest.fixture(scope="module")
def base_url(encoder_dir, tmp_path_factory, fake_llm):
    settings = settings_for(encoder_dir, tmp_path_factory.mktemp("rag"), fake_llm.url)
    with live_server(build_app(settings)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url):
    with httpx.Client(base_url=base_url, headers=AUTH, timeout=60) as c:
        c.post("/v1/documents", files={"file": ("zebra.md", ZEBRA.encode(), "text/markdown")})
        pdf = make_pdf(
            [
                "Cats sleep for twelve to sixteen hours a day.",
                "Cats purr when content and sometimes when hurt.",
            ],
            title="Cat facts",
        )
        c.post(
            "/v1/documents",
            files={"file": ("cats.pdf", pdf, "application/pdf")},
            data={"id": "cats", "topic": "pets"},
        )
        yield c


def chat(client, question: str, **body):
    return client.post(
        "/v1/chat", json={"messages": [{"role": "user", "content": question}], **RETRIEVAL, **body}
    )


def test_documents_are_listed_and_described(client):
    listing = client.get("/v1/documents").json()
    assert listing["total"] == 2
    cats = client.get("/v1/documents/cats").json()
    assert (cats["title"], cats["pages"], cats["format"], cats["topic"]) == (
        "Cat facts",
        2,
        "pdf",
        "pets",
    )


def test_chat_answers_with_citations_that_carry_page_and_snippet(client):
    r = chat(client, "Why do cats purr?", filters={"source": ["cats"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert "[1]" in body["answer"] and not body["no_answer"]
    citation = body["citations"][0]
    assert (citation["doc_id"], citation["page"], citation["file"]) == ("cats", 2, "cats.pdf")
    assert "purr" in citation["snippet"]
    assert body["sources"][0]["n"] == 1 and "retrieval" in body["timings_ms"]


def test_stream_sends_retrieval_then_deltas_then_the_answer(client):
    with client.stream(
        "POST",
        "/v1/chat",
        json={
            "messages": [{"role": "user", "content": "How far do zebras migrate?"}],
            "stream": True,
            **RETRIEVAL,
        },
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [
            (block.split("\n")[0][7:], json.loads(block.split("\n")[1][6:]))
            for block in r.read().decode().strip().split("\n\n")
        ]
    kinds = [k for k, _ in events]
    assert kinds[0] == "retrieval" and kinds[-1] == "answer"
    assert set(kinds[1:-1]) == {"delta"} and len(kinds) > 3
    final = events[-1][1]
    assert "".join(d["text"] for k, d in events if k == "delta").strip() in final["answer"]
    assert final["citations"][0]["doc_id"] == "zebra.md"


def test_retrieve_returns_sources_without_generating(client, fake_llm):
    before = len(fake_llm.requests)
    r = client.post("/v1/retrieve", json={"query": "zebra diet grasses", "k": 2, **RETRIEVAL})
    body = r.json()
    assert r.status_code == 200 and len(body["sources"]) == 2
    assert body["sources"][0]["section"].endswith("Diet")
    assert body["searched"] == "zebra diet grasses" and "expand" not in body["timings_ms"]
    assert len(fake_llm.requests) == before


def test_retrieve_and_chat_search_the_hyde_expansion_when_configured(
    encoder_dir, tmp_path, fake_llm, reset_llm
):
    settings = settings_for(
        encoder_dir,
        tmp_path,
        fake_llm.url,
        expand="hyde",
        mode="bm25",
        min_relevance=-1,
        diversify=None,
    )
    with live_server(build_app(settings)) as url, httpx.Client(base_url=url, headers=AUTH) as c:
        c.post("/v1/documents", files={"file": ("zebra.md", ZEBRA.encode(), "text/markdown")})
        reset_llm.hyde_reply = "They eat mostly grasses."
        body = c.post("/v1/retrieve", json={"query": "What do they feed on?", "k": 1}).json()
        assert body["searched"] == "What do they feed on? They eat mostly grasses."
        assert body["sources"][0]["section"].endswith("Diet") and "expand" in body["timings_ms"]
        chat = c.post(
            "/v1/chat", json={"messages": [{"role": "user", "content": "What do they feed on?"}]}
        )
        assert chat.status_code == 200 and chat.json()["citations"]


def test_replace_and_delete_over_http(client):
    r = client.post(
        "/v1/documents", files={"file": ("tmp.txt", b"Owls hunt at night.", "text/plain")}
    )
    assert (r.status_code, r.json()["status"]) == (201, "created")
    same = client.post(
        "/v1/documents", files={"file": ("tmp.txt", b"Owls hunt at night.", "text/plain")}
    )
    assert same.json()["status"] == "unchanged"
    owls = {"file": ("tmp.txt", b"Owls can turn their heads.", "text/plain")}
    taken = client.post("/v1/documents", files=owls)
    assert (taken.status_code, taken.json()["error"]["code"]) == (409, "document_exists")
    new = client.post("/v1/documents", files=owls, data={"replace": "true"})
    assert new.json()["status"] == "replaced"
    hit = client.post(
        "/v1/retrieve", json={"query": "owls", "filters": {"source": "tmp.txt"}, **RETRIEVAL}
    )
    assert [s["text"] for s in hit.json()["sources"]] == ["Owls can turn their heads."]
    assert client.delete("/v1/documents/tmp.txt").json() == {"id": "tmp.txt", "deleted": True}
    assert client.get("/v1/documents/tmp.txt").status_code == 404
    gone = client.post(
        "/v1/retrieve", json={"query": "owls", "filters": {"source": "tmp.txt"}, **RETRIEVAL}
    )
    assert gone.json()["sources"] == []


@pytest.mark.parametrize(
    ("name", "data", "media", "status", "code"),
    [
        ("secret.pdf", make_pdf(["x"], password="pw"), "application/pdf", 422, "encrypted_pdf"),
        ("broken.pdf", b"%PDF-1.7\n%garbage", "application/pdf", 422, "corrupt_file"),
        ("sheet.xlsx", b"PK\x03\x04", "application/vnd.ms-excel", 415, "unsupported_type"),
        ("big.txt", b"a " * 150_000, "text/plain", 413, "file_too_large"),
        ("long.pdf", make_pdf(["p"] * 6), "application/pdf", 413, "too_many_pages"),
        ("empty.txt", b"", "text/plain", 422, "empty_file"),
    ],
)
def test_bad_uploads_get_clear_errors(client, name, data, media, status, code):
    before = client.get("/v1/documents").json()["total"]
    r = client.post("/v1/documents", files={"file": (name, data, media)})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["code"] == code and error["param"] == "file"
    assert client.get("/v1/documents").json()["total"] == before


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "x" * 4001}]}, "messages.0.content"),
        ({"messages": [{"role": "system", "content": "hi"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "hi"}], "k": 50}, "k"),
        (
            {"messages": [{"role": "user", "content": "hi"}], "filters": {"colour": "red"}},
            "filters.colour",
        ),
        ({"messages": [{"role": "assistant", "content": "yo"}]}, "messages"),
        ({"messages": [{"role": "user", "content": "   "}]}, "messages.0.content"),
        ({"messages": [{"role": "user", "content": "\x1f\u3000"}]}, "messages.0.content"),
    ],
)
def test_bad_chat_requests_name_the_field(client, body, param):
    r = client.post("/v1/chat", json=body)
    assert r.status_code == 422, r.text
    assert param in r.json()["error"]["param"]


def test_auth_is_required_for_every_route_that_computes_or_reads(base_url):
    assert httpx.post(base_url + "/v1/chat", json={"messages": []}).status_code == 401
    assert httpx.post(base_url + "/v1/retrieve", json={"query": "x"}).status_code == 401
    assert httpx.delete(base_url + "/v1/documents/cats").status_code == 401
    assert httpx.get(base_url + "/v1/documents").status_code == 401
    assert httpx.get(base_url + "/v1/documents/cats").status_code == 401


def test_an_unreachable_generator_is_a_502_not_a_500(encoder_dir, tmp_path):
    from mlstack.testing import free_port

    settings = settings_for(encoder_dir, tmp_path, f"http://127.0.0.1:{free_port()}/v1")
    with live_server(build_app(settings)) as url:
        httpx.post(
            url + "/v1/documents",
            headers=AUTH,
            files={"file": ("z.md", ZEBRA.encode(), "text/markdown")},
        )
        for stream in (False, True):
            r = httpx.post(
                url + "/v1/chat",
                headers=AUTH,
                timeout=60,
                json={
                    "messages": [{"role": "user", "content": "zebras"}],
                    "stream": stream,
                    **RETRIEVAL,
                },
            )
            assert r.status_code == 502, r.text
            assert r.json()["error"]["code"] == "generator_unavailable"


def test_metrics_count_answers_and_time_both_stages(client, base_url):
    chat(client, "zebra stripes")
    chat(client, "zebra stripes", min_relevance=1.0)
    text = httpx.get(base_url + "/metrics", follow_redirects=True).text
    for name in (
        "rag_retrieval_duration_seconds_count",
        "rag_generation_duration_seconds_count",
        'rag_answers_total{outcome="no_answer"}',
        'rag_answers_total{outcome="answered"}',
        "rag_chunks_used_bucket",
        "rag_top_retrieval_score_bucket",
    ):
        assert name in text, name


def test_demo_page_is_served(base_url):
    page = httpx.get(base_url + "/", follow_redirects=True)
    assert page.status_code == 200 and "/v1/chat" in page.text and "/v1/documents" in page.text


def test_a_deleted_index_is_rebuilt_from_the_corpus_and_the_uploads(
    encoder_dir, tmp_path, fake_llm
):
    import shutil

    from rag_chatbot.library import Library
    from semantic_search.encoder import Encoder
    from semantic_search.stores import open_store

    encoder = Encoder(encoder_dir)
    corpus = tmp_path / "corpus-index"
    Library(open_store(str(corpus), encoder.dim), encoder, corpus / "manifest.json").add_file(
        "corpus.txt", b"The corpus article about rivers and lakes."
    )
    settings = settings_for(encoder_dir, tmp_path, fake_llm.url, corpus_index=corpus)
    upload = {"file": ("owls.txt", b"Owls hunt at night.", "text/plain")}
    with live_server(build_app(settings)) as url:
        assert httpx.post(url + "/v1/documents", headers=AUTH, files=upload).status_code == 201
        ids = {d["id"] for d in httpx.get(url + "/v1/documents", headers=AUTH).json()["documents"]}
        assert ids == {"corpus.txt", "owls.txt"}
    shutil.rmtree(settings.index_uri)  # e.g. to pick up a rebuilt corpus
    with live_server(build_app(settings)) as url:
        ids = {d["id"] for d in httpx.get(url + "/v1/documents", headers=AUTH).json()["documents"]}
        assert ids == {"corpus.txt", "owls.txt"}
        hit = httpx.post(
            url + "/v1/retrieve",
            headers=AUTH,
            json={"query": "owls", **RETRIEVAL, "filters": {"source": "owls.txt"}},
        ).json()
        assert hit["sources"][0]["text"] == "Owls hunt at night."
        httpx.delete(url + "/v1/documents/owls.txt", headers=AUTH)
    # the deleted upload's kept file went with it; only the registry is left
    assert {p.name.split("-")[0] for p in (tmp_path / "uploads").iterdir()} == {"registry.sqlite"}


def test_a_busy_generator_is_a_503_with_retry_after(client, reset_llm):
    reset_llm.status = 503
    r = chat(client, "zebra stripes")
    assert r.status_code == 503 and r.headers["Retry-After"]
    assert r.json()["error"]["code"] == "generator_busy"


def test_a_stream_that_breaks_ends_with_an_error_event(client, reset_llm):
    reset_llm.fail_midway = True
    with client.stream(
        "POST",
        "/v1/chat",
        json={
            "messages": [{"role": "user", "content": "How far do zebras migrate?"}],
            "stream": True,
            **RETRIEVAL,
        },
    ) as r:
        assert r.status_code == 200  # the first token came through before the failure
        blocks = r.read().decode().strip().split("\n\n")
    assert blocks[-1].startswith("event: error")
    assert json.loads(blocks[-1].split("\n")[1][6:])["error"]["code"] == "generator_error"


def test_an_empty_index_answers_that_it_does_not_know(encoder_dir, tmp_path, reset_llm):
    with live_server(build_app(settings_for(encoder_dir, tmp_path, reset_llm.url))) as url:
        r = httpx.post(
            url + "/v1/chat",
            headers=AUTH,
            json={"messages": [{"role": "user", "content": "anything?"}], **RETRIEVAL},
        )
    assert r.status_code == 200 and r.json()["no_answer"]
    assert reset_llm.requests == []


def test_an_index_of_another_encoders_vectors_refuses_to_start(encoder_dir, tmp_path, fake_llm):
    # A new encoder against the index the old one built: the service refuses and says how to
    # re-index; once the index is moved away, uploads come back embedded with the new encoder.
    import shutil
    import time

    settings = settings_for(encoder_dir, tmp_path, fake_llm.url)
    upload = {"file": ("owls.txt", b"Owls hunt at night.", "text/plain")}
    with live_server(build_app(settings)) as url:
        assert httpx.post(url + "/v1/documents", headers=AUTH, files=upload).status_code == 201
    other = tmp_path / "other-encoder"
    shutil.copytree(encoder_dir, other)
    model = other / f"model{'.int8' if settings.encoder_variant == 'int8' else ''}.onnx"
    data = model.read_bytes()
    model.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    moved = settings.model_copy(update={"encoder_dir": other})
    with live_server(build_app(moved), wait_ready=False) as url:
        deadline = time.monotonic() + 30
        while "failed" not in httpx.get(url + "/readyz").text and time.monotonic() < deadline:
            time.sleep(0.05)
        message = httpx.get(url + "/v1/documents", headers=AUTH).json()["error"]["message"]
    assert "not of the encoder loaded now" in message and "indexed again" in message
    shutil.move(settings.index_uri, tmp_path / "old-index")
    with live_server(build_app(moved)) as url:
        ids = {d["id"] for d in httpx.get(url + "/v1/documents", headers=AUTH).json()["documents"]}
        assert ids == {"owls.txt"}
        body = {"query": "owls", **RETRIEVAL}
        hit = httpx.post(url + "/v1/retrieve", headers=AUTH, json=body).json()
        assert hit["sources"][0]["text"] == "Owls hunt at night."
