"""Metric labels stay bounded whatever a client sends: an unknown method is "other", a path no
route matches is "unmatched", a matched one is its route template. Scraped from /metrics over
real HTTP, under both HTTP parsers uvicorn may pick (httptools refuses unknown methods itself,
h11 passes any token to the app)."""

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlstack.testing import live_server

HTTP_FAMILIES = ("http_requests", "http_request_duration_seconds")


def label_values(base: str) -> tuple[set[str], set[str], str]:
    text = httpx.get(f"{base}/metrics").text
    methods, routes = set(), set()
    for family in text_string_to_metric_families(text):
        if family.name in HTTP_FAMILIES:
            for sample in family.samples:
                methods.add(sample.labels["method"])
                routes.add(sample.labels["route"])
    return methods, routes, text


def hostile_round(base: str) -> list[str]:
    """Made-up methods and random paths, on a real route and on none; returns the tokens sent."""
    tokens = [uuid.uuid4().hex[:12] for _ in range(6)]
    with httpx.Client(base_url=base) as client:
        for token in tokens:
            for method in ("FOOBAR123", f"X{token.upper()}", "PROPFIND"):
                for path in ("/v1/double", f"/{token}", f"/v1/{token}/x?q={token}"):
                    client.request(method, path)
            client.get(f"/v1/double/{token}")
            client.post(f"/{token}", json={"values": [1]})
    return tokens


@pytest.mark.parametrize("parser", ["default", "h11"])
def test_hostile_methods_and_paths_add_no_label_values(make_app, parser):
    http = "auto" if parser == "default" else "h11"  # h11 accepts any token as a method
    with live_server(make_app(), http=http) as base:
        httpx.post(f"{base}/v1/double", json={"values": [1]})
        httpx.get(f"{base}/nowhere")
        label_values(base)  # a scrape is counted after it answers: the next one shows it
        before_methods, before_routes, _ = label_values(base)
        assert "unmatched" in before_routes and "/v1/double" in before_routes
        tokens = hostile_round(base)  # the first round may add "other" once, nothing else
        methods, routes, _ = label_values(base)
        assert methods <= before_methods | {"other"}
        assert routes == before_routes
        tokens += hostile_round(base)  # a second round, other tokens: nothing new at all
        after_methods, after_routes, text = label_values(base)
    assert (after_methods, after_routes) == (methods, routes)
    assert after_methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert not any(token in text or token.upper() in text for token in tokens)
    assert "FOOBAR123" not in text
    if parser == "h11":  # the app saw the made-up methods: they were counted, as "other"
        assert "other" in after_methods


def test_model_latency_is_one_observation_per_request(make_app):
    """`model_request_duration_seconds` is per request (all its items together), as its help
    text says: a request of five items adds one observation, and five items to the batches."""

    def counts(base: str) -> tuple[float, float, str]:
        text = httpx.get(f"{base}/metrics").text
        found = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name.endswith("_count") and s.labels.get("model") == "echo":
                    found[family.name] = s.value
        helps = {f.name: f.documentation for f in text_string_to_metric_families(text)}
        return (
            found.get("model_request_duration_seconds", 0.0),
            found.get("model_queue_wait_seconds", 0.0),
            helps.get("model_request_duration_seconds", ""),
        )

    with live_server(make_app()) as base:
        requests0, items0, _ = counts(base)
        r = httpx.post(f"{base}/v1/double", json={"values": [1, 2, 3, 4, 5]})
        assert r.status_code == 200
        requests1, items1, help_text = counts(base)
    assert requests1 - requests0 == 1
    assert items1 - items0 == 5  # queue wait is per item: the two are not the same unit
    assert "per request" in help_text and "per item" not in help_text
