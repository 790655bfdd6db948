"""CORS on a keyed service over real HTTP. A browser's preflight never carries the key (Fetch
spec), so CORS must answer it before auth, and every answer, errors included, must name the
origin, or the page sees only "CORS error" instead of the envelope."""

import httpx
import pytest

from mlstack.serve import ServeSettings
from mlstack.testing import live_server

from .test_serve_app import assert_envelope

ORIGIN = "http://127.0.0.1:8003"  # the LLM chat demo page, calling semantic search
KEY = "s3cret"
AUTH = {"Authorization": f"Bearer {KEY}"}
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


@pytest.fixture
def base(make_app):
    app = make_app(api_key=KEY, cors_origins=[ORIGIN], max_body_bytes=1024)

    @app.get("/v1/crash")
    def crash() -> dict:
        raise RuntimeError("a bug")

    with live_server(app) as url:
        yield url


def allowed_origin(response: httpx.Response) -> str | None:
    return response.headers.get("access-control-allow-origin")


def test_a_preflight_from_an_allowed_origin_needs_no_key(base):
    r = httpx.options(f"{base}/v1/double", headers=PREFLIGHT)
    assert r.status_code == 200, r.text
    assert allowed_origin(r) == ORIGIN
    assert "authorization" in r.headers["access-control-allow-headers"].lower()
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "access-control-allow-credentials" not in r.headers


def test_the_actual_request_names_the_origin_with_or_without_the_key(base):
    body = {"values": [1, 2]}
    refused = httpx.post(f"{base}/v1/double", json=body, headers={"Origin": ORIGIN})
    assert_envelope(refused, 401, "invalid_api_key", "authorization")
    assert allowed_origin(refused) == ORIGIN  # so the page can show why
    exposed = refused.headers["access-control-expose-headers"].lower()
    assert "x-request-id" in exposed and "retry-after" in exposed
    ok = httpx.post(f"{base}/v1/double", json=body, headers={"Origin": ORIGIN, **AUTH})
    assert ok.json() == {"results": [2.0, 4.0]}
    assert allowed_origin(ok) == ORIGIN


def test_a_too_large_body_is_413_with_the_origin(base):
    headers = {"Origin": ORIGIN, "content-type": "application/json", **AUTH}
    big = b'{"values": [' + b"1," * 2000 + b"1]}"
    declared = httpx.post(f"{base}/v1/double", content=big, headers=headers)
    assert_envelope(declared, 413, "payload_too_large", "body")
    assert allowed_origin(declared) == ORIGIN

    def chunks():  # no Content-Length: refused while streaming in, further inside
        for _ in range(10):
            yield b" " * 500

    chunked = httpx.post(f"{base}/v1/double", content=chunks(), headers=headers)
    assert_envelope(chunked, 413, "payload_too_large")
    assert allowed_origin(chunked) == ORIGIN


def test_an_unhandled_error_is_a_500_envelope_with_the_origin_and_request_id(base):
    r = httpx.get(f"{base}/v1/crash", headers={"Origin": ORIGIN, **AUTH})
    assert_envelope(r, 500, "internal_error")  # the X-Request-ID header matches the body's too
    assert allowed_origin(r) == ORIGIN


def test_a_disallowed_origin_gets_no_allow_origin(base):
    evil = "https://evil.example"
    preflight = httpx.options(f"{base}/v1/double", headers={**PREFLIGHT, "Origin": evil})
    assert preflight.status_code == 400 and allowed_origin(preflight) is None
    r = httpx.post(f"{base}/v1/double", json={"values": [1]}, headers={"Origin": evil, **AUTH})
    assert r.status_code == 200 and allowed_origin(r) is None  # the browser withholds it
    refused = httpx.post(f"{base}/v1/double", json={"values": [1]}, headers={"Origin": evil})
    assert_envelope(refused, 401, "invalid_api_key")
    assert allowed_origin(refused) is None


def test_an_options_request_that_is_no_preflight_still_needs_the_key(base):
    # Only OPTIONS + Origin + Access-Control-Request-Method is a preflight; anything else that
    # skipped auth would reach the routes without a key.
    not_preflights = [
        {"Origin": ORIGIN},
        {"Access-Control-Request-Method": "POST"},
        {},
    ]
    for headers in not_preflights:
        r = httpx.options(f"{base}/v1/double", headers=headers)
        assert_envelope(r, 401, "invalid_api_key")
    # with the key it reaches the router, where no route answers OPTIONS
    assert_envelope(httpx.options(f"{base}/v1/double", headers=AUTH), 405, "method_not_allowed")


def test_any_origin_is_a_plain_star_never_with_credentials(make_app):
    with live_server(make_app(api_key=KEY, cors_origins=["*"])) as url:
        preflight = httpx.options(f"{url}/v1/double", headers=PREFLIGHT)
        assert preflight.status_code == 200 and allowed_origin(preflight) == "*"
        refused = httpx.post(f"{url}/v1/double", json={"values": [1]}, headers={"Origin": ORIGIN})
        assert refused.status_code == 401 and allowed_origin(refused) == "*"
        for r in (preflight, refused):
            assert "access-control-allow-credentials" not in r.headers


def test_cors_origins_from_the_environment_is_a_json_list(monkeypatch):
    # the format scripts/demo.sh and docker-compose.yml pass (a service swaps the MLSTACK_ prefix)
    origins = ["http://127.0.0.1:8003", "http://localhost:8003"]
    monkeypatch.setenv("MLSTACK_CORS_ORIGINS", '["http://127.0.0.1:8003","http://localhost:8003"]')
    assert ServeSettings(_env_file=None).cors_origins == origins
