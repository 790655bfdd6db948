"""Readiness, hostile input, a slow generator and document id conflicts, over real HTTP."""

import threading
import time

import httpx
import pytest

from mlstack.testing import live_server
from rag_chatbot import service
from rag_chatbot.service import build_app

from .conftest import ZEBRA, make_pdf
from .test_service import AUTH, RETRIEVAL, settings_for

QUESTION = {"messages": [{"role": "user", "content": "zebras?"}]}
GATED = [
    ("POST", "/v1/chat", QUESTION),
    ("POST", "/v1/retrieve", {"query": "zebras"}),
    ("GET", "/v1/documents", None),
    ("GET", "/v1/documents/x", None),
    ("DELETE", "/v1/documents/x", None),
]


@pytest.fixture(autouse=True)
def _default_replies(reset_llm):
    """The fake generator answers normally unless a test says otherwise."""


def _call(url: str, method: str, path: str, body) -> httpx.Response:
    return httpx.request(method, url + path, json=body, headers=AUTH, timeout=10)


def test_every_route_is_503_with_retry_after_while_loading(
    encoder_dir, tmp_path, fake_llm, monkeypatch
):
    release = threading.Event()
    real = service.open_documents

    def slow(settings):
        release.wait(30)
        return real(settings)

    monkeypatch.setattr(service, "open_documents", slow)
    app = build_app(settings_for(encoder_dir, tmp_path, fake_llm.url))
    with live_server(app, wait_ready=False) as url:
        try:
            for method, path, body in GATED:
                r = _call(url, method, path, body)
                assert r.status_code == 503, (path, r.text)
                assert r.headers["Retry-After"] and r.json()["error"]["code"] == "not_ready"
            files = {"file": ("z.md", ZEBRA.encode(), "text/markdown")}
            r = httpx.post(url + "/v1/documents", headers=AUTH, files=files)
            assert r.status_code == 503 and r.headers["Retry-After"]
            assert httpx.get(url + "/healthz").status_code == 200  # loading is alive
        finally:
            release.set()


def test_a_failed_load_is_503_on_every_route_and_fails_liveness(tmp_path, fake_llm):
    app = build_app(settings_for(tmp_path / "no-encoder", tmp_path, fake_llm.url))
    with live_server(app, wait_ready=False) as url:
        deadline = time.monotonic() + 10
        while httpx.get(url + "/healthz").status_code == 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert httpx.get(url + "/healthz").status_code == 503
        assert "has no encoder" in httpx.get(url + "/readyz").json()["error"]["message"]
        for method, path, body in GATED:
            r = _call(url, method, path, body)
            assert r.status_code == 503 and r.headers["Retry-After"], (path, r.text)


@pytest.fixture(scope="module")
def url(encoder_dir, tmp_path_factory, fake_llm):
    folder = tmp_path_factory.mktemp("rag-reliability")
    settings = settings_for(
        encoder_dir,
        folder,
        fake_llm.url,
        max_upload_bytes=2_000_000,
        max_body_bytes=3_000_000,
        generator_timeout_s=1.0,
        max_document_chars=50_000,
    )
    with live_server(build_app(settings)) as base:
        httpx.post(
            base + "/v1/documents",
            headers=AUTH,
            files={"file": ("zebra.md", ZEBRA.encode(), "text/markdown")},
        )
        yield base


def test_the_same_file_name_from_two_users_is_a_conflict_not_a_replacement(url):
    first = {"file": ("notes.txt", b"Alice's notes on owls.", "text/plain")}
    second = {"file": ("notes.txt", b"Bob's notes on bats.", "text/plain")}
    assert httpx.post(url + "/v1/documents", headers=AUTH, files=first).status_code == 201
    r = httpx.post(url + "/v1/documents", headers=AUTH, files=second)
    error = r.json()["error"]
    assert (r.status_code, error["code"], error["param"]) == (409, "document_exists", "id")
    assert "replace=true" in error["message"]
    kept = httpx.post(
        url + "/v1/retrieve",
        headers=AUTH,
        json={"query": "notes", "filters": {"source": "notes.txt"}, **RETRIEVAL},
    ).json()
    assert [s["text"] for s in kept["sources"]] == ["Alice's notes on owls."]
    again = httpx.post(url + "/v1/documents", headers=AUTH, files=first)  # a retry: no conflict
    assert (again.status_code, again.json()["status"]) == (201, "unchanged")
    other = httpx.post(url + "/v1/documents", headers=AUTH, files=second, data={"id": "bob/notes"})
    assert other.status_code == 201


MB = 1_000_000


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status", "param"),
    [
        (
            "POST",
            "/v1/chat",
            {"json": {"messages": [{"role": "user", "content": "a" * MB}]}},
            422,
            "messages.0.content",
        ),
        (
            "POST",
            "/v1/chat",
            {"json": {"messages": [{"role": "user", "content": "hi\x00"}]}},
            422,
            "messages.0.content",
        ),
        ("POST", "/v1/chat", {"json": {**QUESTION, "max_tokens": 10**12}}, 422, "max_tokens"),
        ("POST", "/v1/chat", {"json": {**QUESTION, "k": 10**30}}, 422, "k"),
        ("POST", "/v1/chat", {"json": {**QUESTION, "temperature": False}}, 422, "temperature"),
        (
            "POST",
            "/v1/chat",
            {"json": {"messages": [QUESTION["messages"][0]] * 33}},
            422,
            "messages",
        ),
        (
            "POST",
            "/v1/chat",
            {"content": b"[" * MB, "headers": {"content-type": "application/json"}},
            400,
            "body",
        ),
        (
            "POST",
            "/v1/chat",
            {
                "content": b'{"messages": "\xff\xfe"}',
                "headers": {"content-type": "application/json"},
            },
            400,
            "body",
        ),
        ("POST", "/v1/retrieve", {"json": {"query": "\u3000\x1f "}}, 422, "query"),
        (
            "POST",
            "/v1/retrieve",
            {"json": {"query": "x", "filters": {"source": ["a"] * 65}}},
            422,
            "filters.source",
        ),
        (  # the list branch's limit, not the string branch's type mismatch
            "POST",
            "/v1/retrieve",
            {"json": {"query": "x", "filters": {"topic": ["t"] * 100_000}}},
            422,
            "filters.topic",
        ),
        (
            "POST",
            "/v1/retrieve",
            {"json": {"query": "x", "filters": {"date_to": 0}}},
            422,
            "filters.date_to",
        ),
        (
            "POST",
            "/v1/documents",
            {"files": {"file": ("big.txt", b"x" * MB, "text/plain")}, "data": {"id": " \t"}},
            422,
            "id",
        ),
        (
            "POST",
            "/v1/documents",
            {"files": {"file": ("x.txt", b"x", "text/plain")}, "data": {"colour": "red"}},
            422,
            "colour",
        ),
        (
            "POST",
            "/v1/documents",
            {"files": {"file": ("nul.txt", b"a\x00b" * 1000, "text/plain")}},
            415,
            "file",
        ),
        (
            "POST",
            "/v1/documents",
            {"files": {"file": ("latin1.txt", b"caf\xe9 " * 1000, "text/plain")}},
            422,
            "file",
        ),
        # NUL: PostgreSQL refuses it in a text column (a 500 there), sqlite stored it.
        (
            "POST",
            "/v1/documents",
            {"files": {"file": ("a.txt", b"Paris.", "text/plain")}, "data": {"id": "a\x00b"}},
            422,
            "id",
        ),
        (
            "POST",
            "/v1/documents",
            {"files": {"file": ("a.txt", b"Paris.", "text/plain")}, "data": {"title": "t\x00"}},
            422,
            "title",
        ),
        ("GET", "/v1/documents/a%00b", {}, 422, "doc_id"),
        ("DELETE", "/v1/documents/a%00b", {}, 422, "doc_id"),
        (  # the form model would keep the last part: the first would be lost without a word
            "POST",
            "/v1/documents",
            {
                "files": [
                    ("file", ("a1.txt", b"Paris.", "text/plain")),
                    ("file", ("a2.txt", b"Rome.", "text/plain")),
                ]
            },
            422,
            "file",
        ),
        *(  # the same for every other field: an id or title was silently the last one
            (
                "POST",
                "/v1/documents",
                {"files": {"file": ("a.txt", b"Paris.", "text/plain")}, "data": {field: pair}},
                422,
                field,
            )
            for field, pair in [
                ("id", ["a1", "a2"]),
                ("title", ["One", "Two"]),
                ("topic", ["t", "t"]),
                ("replace", ["false", "true"]),
            ]
        ),
        ("GET", "/v1/documents/" + "x" * 1000, {}, 422, "doc_id"),
        ("GET", "/v1/documents", {"params": {"limit": 10**20}}, 422, "limit"),
    ],
)
def test_hostile_input_is_a_quick_clear_4xx(url, method, path, kwargs, status, param):
    t0 = time.perf_counter()
    headers = {**AUTH, **kwargs.pop("headers", {})}
    r = httpx.request(method, url + path, headers=headers, timeout=10, **kwargs)
    assert time.perf_counter() - t0 < 1.0
    assert r.status_code == status, r.text
    assert param in r.json()["error"]["param"]


def test_a_megabyte_without_separators_is_refused_before_tokenizing(url):
    """A 1 MB "word" (tokenizing it alone takes ~1 s), 1 MB of separators, lines or tags
    (parsing them takes 1-2 s): refused by the text limit before any parser, tokenizer or
    chunker runs, well within a second."""
    for name, data in (
        ("word.txt", b"a" * MB),
        ("dots.md", b"#" + b". " * (MB // 2)),
        ("lines.md", b"#\n" * (MB // 2)),
        ("tags.html", b"<p>" * (MB // 3)),
    ):
        t0 = time.perf_counter()
        r = httpx.post(
            url + "/v1/documents",
            headers=AUTH,
            timeout=30,
            files={"file": (name, data, "text/plain")},
        )
        assert time.perf_counter() - t0 < 1.0, name
        assert r.status_code in (413, 422), r.text
        assert r.json()["error"]["code"] in ("document_too_long", "no_text"), r.text


def test_a_document_over_the_chunk_limit_is_a_413(encoder_dir, tmp_path, fake_llm):
    settings = settings_for(encoder_dir, tmp_path, fake_llm.url, max_document_chunks=3)
    with live_server(build_app(settings)) as base:
        text = " ".join(f"Sentence number {i} is about zebras." for i in range(200))
        r = httpx.post(
            base + "/v1/documents",
            headers=AUTH,
            files={"file": ("long.txt", text.encode(), "text/plain")},
        )
        assert r.status_code == 413 and r.json()["error"]["code"] == "too_many_chunks"
        assert r.json()["error"]["limit"] == 3


def test_pdf_extraction_past_its_time_budget_is_a_422(encoder_dir, tmp_path, fake_llm):
    settings = settings_for(encoder_dir, tmp_path, fake_llm.url, parse_timeout_s=1e-9)
    with live_server(build_app(settings)) as base:
        pdf = make_pdf(["one", "two", "three"])
        r = httpx.post(
            base + "/v1/documents",
            headers=AUTH,
            files={"file": ("slow.pdf", pdf, "application/pdf")},
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "parse_timeout"
        assert httpx.get(base + "/v1/documents", headers=AUTH).json()["total"] == 0


def test_a_slow_generator_is_a_504_not_a_hang(url, reset_llm):
    reset_llm.delay_s = 5.0
    for stream in (False, True):
        t0 = time.perf_counter()
        r = httpx.post(
            url + "/v1/chat",
            headers=AUTH,
            timeout=30,
            json={**QUESTION, "stream": stream, **RETRIEVAL},
        )
        assert r.status_code == 504, r.text
        assert r.json()["error"]["code"] == "generator_timeout"
        assert time.perf_counter() - t0 < 4.5  # the 1 s timeout, retried once
    reset_llm.delay_s = 0.0


def test_parsing_an_upload_holds_no_lock_over_other_writes(encoder_dir, tmp_path, fake_llm):
    """A slow parse (a big PDF) used to hold the write lock: every delete and upload waited."""
    app = build_app(settings_for(encoder_dir, tmp_path, fake_llm.url))
    with live_server(app) as base:
        files = {"file": ("z.md", ZEBRA.encode(), "text/markdown")}
        assert httpx.post(base + "/v1/documents", headers=AUTH, files=files).status_code == 201
        docs = app.state.resources["documents"]
        real, started = docs.prepare, threading.Event()

        def slow_prepare(*args, **kwargs):
            started.set()
            time.sleep(3)
            return real(*args, **kwargs)

        docs.prepare = slow_prepare
        slow = threading.Thread(
            target=httpx.post,
            args=(base + "/v1/documents",),
            kwargs={
                "headers": AUTH,
                "timeout": 30,
                "files": {"file": ("slow.txt", b"Parsed slowly.", "text/plain")},
            },
        )
        slow.start()
        assert started.wait(10)
        t0 = time.perf_counter()
        assert httpx.delete(base + "/v1/documents/z.md", headers=AUTH).status_code == 200
        assert time.perf_counter() - t0 < 1.5
        slow.join()
