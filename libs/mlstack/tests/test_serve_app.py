"""The app factory over real HTTP: health, readiness, models, ids, auth, limits, the envelope."""

import gzip
import time

import httpx
import pytest

from mlstack.serve import ServeSettings, create_app
from mlstack.testing import live_server

from .conftest import EchoModel


def assert_envelope(response: httpx.Response, status: int, code: str, param: str | None = None):
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    if param is not None:
        assert error["param"] == param
    assert response.headers["x-request-id"] == error["request_id"]
    return error


def test_health_models_and_request_id(make_app):
    with live_server(make_app()) as base:
        assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
        assert httpx.get(f"{base}/readyz").status_code == 200
        models = httpx.get(f"{base}/v1/models").json()["data"]
        assert models[0]["id"] == "echo" and models[0]["version"] == "3"
        assert {"sha256", "load_seconds", "created"} <= set(models[0])
        r = httpx.post(
            f"{base}/v1/double", json={"values": [1, 2.5]}, headers={"X-Request-ID": "abc-123"}
        )
        assert r.json() == {"results": [2.0, 5.0]}
        assert r.headers["x-request-id"] == "abc-123"
        generated = httpx.get(f"{base}/healthz").headers["x-request-id"]
        assert len(generated) == 32


def test_readiness_is_503_with_reason_until_warm(make_app):
    model = EchoModel(warmup_s=120)  # until the test says so: a timer races a loaded machine
    with live_server(make_app(model), wait_ready=False) as base:
        try:
            error = assert_envelope(httpx.get(f"{base}/readyz"), 503, "not_ready")
            assert "warming up echo" in error["message"] or "loading" in error["message"]
            assert httpx.get(f"{base}/healthz").status_code == 200  # alive while not ready
            r = httpx.post(f"{base}/v1/double", json={"values": [1]})
            assert_envelope(r, 503, "not_ready")
            assert r.headers["retry-after"] == "1"
        finally:
            model.warm.set()
        for _ in range(100):
            if httpx.get(f"{base}/readyz").status_code == 200:
                break
            time.sleep(0.05)
        assert httpx.post(f"{base}/v1/double", json={"values": [1]}).json() == {"results": [2.0]}


def test_failed_load_is_reported_not_crashed():
    def broken():
        raise FileNotFoundError("models/x.onnx")

    app = create_app(title="t", settings=ServeSettings(), load_models=broken)
    with live_server(app, wait_ready=False) as base:
        for _ in range(50):
            error = httpx.get(f"{base}/readyz").json()["error"]
            if "failed" in error["message"]:
                break
        assert "FileNotFoundError" in error["message"]
        # liveness fails too, so a supervisor restarts the process instead of keeping it forever
        assert_envelope(httpx.get(f"{base}/healthz"), 503, "not_ready")
        assert_envelope(httpx.post(f"{base}/v1/models"), 405, "method_not_allowed")
        assert_envelope(httpx.get(f"{base}/v1/models"), 503, "not_ready")


def test_api_key_guards_everything_but_health(make_app):
    with live_server(make_app(api_key="s3cret")) as base:
        assert httpx.get(f"{base}/healthz").status_code == 200
        assert httpx.get(f"{base}/metrics").status_code == 200
        r = httpx.get(f"{base}/v1/models")
        assert_envelope(r, 401, "invalid_api_key", "authorization")
        assert r.headers["www-authenticate"] == "Bearer"
        bad = httpx.get(f"{base}/v1/models", headers={"Authorization": "Bearer nope"})
        assert_envelope(bad, 401, "invalid_api_key")
        ok = httpx.get(f"{base}/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_body_limit_with_and_without_content_length(make_app):
    with live_server(make_app(max_body_bytes=1024)) as base:
        big = b'{"values": [' + b"1," * 2000 + b"1]}"
        error = assert_envelope(
            httpx.post(
                f"{base}/v1/double", content=big, headers={"content-type": "application/json"}
            ),
            413,
            "payload_too_large",
            "body",
        )
        assert error["limit"] == 1024

        def chunks():  # chunked transfer: no Content-Length header to trust
            for _ in range(10):
                yield b" " * 500

        r = httpx.post(
            f"{base}/v1/double", content=chunks(), headers={"content-type": "application/json"}
        )
        assert_envelope(r, 413, "payload_too_large")


def test_bad_input_gets_4xx_envelopes_never_500(make_app):
    with live_server(make_app()) as base:
        r = httpx.post(
            f"{base}/v1/double", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert_envelope(r, 400, "invalid_json")
        r = httpx.post(f"{base}/v1/double", json={"values": ["x"]})
        assert_envelope(r, 422, "invalid_float_parsing", "values.0")
        r = httpx.post(f"{base}/v1/double", json={"values": list(range(65))})
        error = assert_envelope(r, 422, "invalid_too_long", "values")
        assert error["limit"] == 64
        plain = httpx.post(
            f"{base}/v1/double", content=b"1,2", headers={"content-type": "text/plain"}
        )
        assert_envelope(plain, 415, "unsupported_media_type", "content-type")
        empty = httpx.post(f"{base}/v1/double", headers={"content-type": "application/json"})
        assert_envelope(empty, 422, "invalid_missing", "values")  # read as {}: names the field
        gzipped = httpx.post(
            f"{base}/v1/double",
            content=gzip.compress(b'{"values": [1]}'),
            headers={"content-type": "application/json", "content-encoding": "gzip"},
        )
        assert_envelope(gzipped, 415, "unsupported_content_encoding", "content-encoding")
        both = httpx.post(  # a second header counts too
            f"{base}/v1/double",
            content=b'{"values": [1]}',
            headers=[
                ("content-type", "application/json"),
                ("content-encoding", "identity"),
                ("content-encoding", "gzip"),
            ],
        )
        assert_envelope(both, 415, "unsupported_content_encoding", "content-encoding")
        untyped = httpx.post(f"{base}/v1/double", content=b'{"values": [1]}')  # no type at all
        assert_envelope(untyped, 415, "unsupported_media_type", "content-type")
        assert_envelope(httpx.get(f"{base}/nope"), 404, "not_found")
        assert_envelope(httpx.delete(f"{base}/v1/models"), 405, "method_not_allowed")
        # a model failure on valid input is a 500, in the same envelope
        r = httpx.post(f"{base}/v1/double", json={"values": [1]})
        assert r.status_code == 200


def test_metrics_are_prometheus_text(make_app):
    from prometheus_client.parser import text_string_to_metric_families

    with live_server(make_app()) as base:
        for _ in range(3):
            httpx.post(f"{base}/v1/double", json={"values": [1, 2]})
        text = httpx.get(f"{base}/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = [
        s
        for s in families["http_requests"].samples
        if s.labels.get("route") == "/v1/double" and s.name.endswith("_total")
    ]
    assert sum(s.value for s in requests) >= 3
    batch = [
        s
        for s in families["model_batch_size"].samples
        if s.name.endswith("_count") and s.labels["model"] == "echo"
    ]
    assert batch and batch[0].value >= 3
    assert "model_queue_wait_seconds" in families


def test_unknown_methods_share_one_metric_label(make_app):
    from prometheus_client.parser import text_string_to_metric_families

    with live_server(make_app()) as base:
        # methods the HTTP parser accepts (h11 would pass any token): each a new time series
        for method in ("PROPFIND", "MKCOL", "LOCK", "PURGE", "SEARCH", "REPORT"):
            assert httpx.request(method, f"{base}/v1/double").status_code == 405
        text = httpx.get(f"{base}/metrics").text
    methods = {
        s.labels["method"]
        for f in text_string_to_metric_families(text)
        if f.name.startswith("http_request")
        for s in f.samples
    }
    assert "other" in methods
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


@pytest.mark.parametrize("origin", ["https://demo.example"])
def test_cors_allows_configured_origin(make_app, origin):
    with live_server(make_app(cors_origins=[origin])) as base:
        r = httpx.options(
            f"{base}/v1/models", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
        )
        assert r.headers["access-control-allow-origin"] == origin
